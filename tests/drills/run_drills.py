"""Bug drills: each patch here plants one realistic bug that once slipped past the suite.

For every ``NAME.patch`` the committed tree is copied to a scratch directory, the patch is
applied there (source only, never tests), and the node ids listed in ``NAME.test`` are run.
A drill passes when those tests FAIL with the bug in place; the same tests pass on the
clean tree in ``make test``. This proves, rerunnably, that the tests which were once too
weak now catch the bug (issue 13), instead of a one-off claim in a note.

Usage: python tests/drills/run_drills.py [NAME ...]      (``make drills``)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def copy_tree(dest: Path) -> None:
    """The working tree (tracked and new files, not ignored ones), as a test run sees it."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            target = dest / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())


def run_drill(name: str) -> tuple[bool, str, float]:
    patch = HERE / f"{name}.patch"
    nodes = (HERE / f"{name}.test").read_text().split()
    env = dict(os.environ, BINANCE_LIVE_SHARED=str(ROOT.parent / "shared"))
    with tempfile.TemporaryDirectory(prefix=f"drill-{name}-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        subprocess.run(["git", "init", "-q"], cwd=work, check=True)
        applied = subprocess.run(["git", "apply", str(patch)], cwd=work,
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            return False, f"patch does not apply: {applied.stderr.strip()}", 0.0
        t0 = time.monotonic()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p",
                              "no:cacheprovider", "--no-cov", *nodes], cwd=work, env=env,
                             capture_output=True, text=True)
        elapsed = time.monotonic() - t0
    failed = [ln for ln in run.stdout.splitlines() if ln.startswith(("FAILED", "ERROR"))]
    if run.returncode == 1 and failed:
        return True, failed[0][:150], elapsed
    return False, f"pytest exit {run.returncode}: the bug was NOT caught", elapsed


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("*.patch"))
    print(f"{'drill':34} {'caught':7} {'s':>6}  first failure")
    missed = 0
    for name in names:
        ok, detail, elapsed = run_drill(name)
        missed += not ok
        print(f"{name:34} {'yes' if ok else 'NO':7} {elapsed:6.1f}  {detail}", flush=True)
    print(f"{len(names) - missed}/{len(names)} drills caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
