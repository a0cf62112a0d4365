"""The bug drills stay runnable: each patch still applies and names tests that exist.

``make drills`` proves the tests catch each planted bug (it is slow: it runs them with the
bug in place). This keeps the drills from rotting between runs: an edit to the source
that a patch touches must re-cut the patch, and a renamed test must be renamed here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

DRILLS = ROOT / "tests" / "drills"
PATCHES = sorted(DRILLS.glob("*.patch"))


def test_there_are_drills() -> None:
    assert len(PATCHES) >= 7, PATCHES  # one per bug issue 13 named, at least


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_the_patch_plants_its_bug_in_source_only_and_still_applies(patch: Path) -> None:
    touched = re.findall(r"^\+\+\+ b/(\S+)", patch.read_text(), flags=re.M)
    assert touched and all(not t.startswith("tests/") for t in touched), touched
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=ROOT,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_the_drill_names_tests_that_exist(patch: Path) -> None:
    nodes = patch.with_suffix(".test").read_text().split()
    assert nodes
    for node in nodes:
        path, _, name = node.partition("::")
        source = (ROOT / path).read_text()
        function = name.split("[")[0]
        assert re.search(rf"^(async )?def {function}\(", source, flags=re.M), node
