"""Layering guards: the engine never loads UI code; headless mode never loads Textual."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT

PROBE = """
import sys
{imports}
ui = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})
print(','.join(ui))
"""


def loaded(imports: str, forbidden: set[str]) -> list[str]:
    code = PROBE.format(imports=imports, forbidden=forbidden)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_engine_imports_no_ui_code() -> None:
    imports = "\n".join([
        "import engine.engine, engine.manager, engine.bus, engine.decode, engine.config",
        "import engine.exchange, engine.demo, engine.poller, engine.rest",
    ])
    assert loaded(imports, {"textual", "rich", "tui"}) == []


def test_headless_path_does_not_import_textual() -> None:
    imports = "import tui.cli, tui.headless\ntui.cli.build_parser()"
    assert loaded(imports, {"textual"}) == []


def test_engine_sources_never_mention_ui_packages() -> None:
    for path in (ROOT / "engine").rglob("*.py"):
        text = path.read_text()
        for bad in ("import textual", "from textual", "import rich", "from rich",
                    "from tui", "import tui"):
            assert bad not in text, f"{path.relative_to(ROOT)} contains {bad!r}"
