"""The layering, enforced: the tree shows the data flow and imports only point down it.

Every import statement counts, wherever it is: module level, under ``TYPE_CHECKING``, or
inside a function. The rules:

* no import cycles between the project's modules, nor between the engine's parts (each
  sub-package counts as one part, each top-level module as another);
* the local exchange (``engine/exchange``, the test oracle) imports nothing else of
  ``engine/``, and nothing else in ``engine/`` imports it;
* ``engine/`` never imports ``tui/``, Textual or Rich (a test also checks what loading the
  engine actually pulls in);
* headless mode never loads Textual; ``import engine.events`` loads no pyarrow, aiohttp or
  Textual;
* at most 12 modules directly in ``engine/`` (the rest live in sub-packages);
* nothing imports a private (``_name``) name from another module;
* every ``type: ignore`` names its error code and says why on the same line.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("engine", "tui")
EXCHANGE = "engine.exchange"
MAX_TOP_MODULES = 12


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(name: str) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every import statement in ``name``."""
    path = modules()[name]
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".") if is_pkg else name.split(".")[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            yield base, [a.name for a in node.names], node.lineno


def project_edges(name: str) -> set[str]:
    """The project modules ``name`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    known = modules()
    out: set[str] = set()
    for target, names, _ in imports(name):
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
        if subs:
            out.update(subs)
        elif target in known:
            out.add(target)
    out.discard(name)
    return out


def test_there_are_no_import_cycles() -> None:
    graph = {name: project_edges(name) for name in modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def part(name: str) -> str:
    """The engine part a module belongs to: ``engine.feed`` for ``engine.feed.link``."""
    return ".".join(name.split(".")[:2])


def test_the_engine_parts_form_no_cycle_either() -> None:
    """Stronger than module cycles: with parts acyclic, the tree can be read top-down."""
    graph: dict[str, set[str]] = {}
    for name in modules():
        if name.startswith("engine.") and not in_exchange(name):
            graph.setdefault(part(name), set()).update(
                part(t) for t in project_edges(name)
                if t.startswith("engine.") and part(t) != part(name))
    seen: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in seen and (found := visit(nxt, [*path, node])):
                return found
        seen[node] = 2
        return None

    for node in sorted(graph):
        if node not in seen:
            cycle = visit(node, [])
            assert cycle is None, " -> ".join(cycle)


def in_exchange(name: str) -> bool:
    return name == EXCHANGE or name.startswith(EXCHANGE + ".")


def test_the_exchange_imports_nothing_else_of_the_engine() -> None:
    bad = [(name, target, line) for name in modules() if in_exchange(name)
           for target, _, line in imports(name)
           if target.split(".")[0] in PACKAGES and not in_exchange(target)
           and target != "engine"]  # ``engine.exchange`` itself starts with ``engine``
    assert bad == []


def test_nothing_in_the_engine_imports_the_exchange_the_tui_or_a_ui_library() -> None:
    bad = [(name, target, line) for name in modules()
           if name.startswith("engine") and not in_exchange(name)
           for target, names, line in imports(name)
           if in_exchange(target) or target.split(".")[0] in ("tui", "textual", "rich")
           or (target == "engine" and "exchange" in names)]
    assert bad == []


def test_no_module_imports_a_private_name_of_another() -> None:
    bad = [(name, target, n, line) for name in modules() for target, names, line in imports(name)
           for n in names if n.startswith("_") and not n.startswith("__")
           and target.split(".")[0] in PACKAGES]
    assert bad == []


def test_the_engine_package_stays_small_at_the_top() -> None:
    top = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(top) <= MAX_TOP_MODULES, top


# -- what loading actually pulls in ---------------------------------------------------------

PROBE = """
import sys
{imports}
print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})))
"""


def loaded(imports: str, forbidden: set[str]) -> list[str]:
    code = PROBE.format(imports=imports, forbidden=forbidden)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_loading_the_whole_engine_loads_no_ui_code() -> None:
    names = sorted(n for n in modules() if n.startswith("engine"))
    assert loaded("\n".join(f"import {n}" for n in names), {"textual", "rich", "tui"}) == []


def test_headless_path_does_not_import_textual() -> None:
    imports = "import tui.cli, tui.headless\ntui.cli.build_parser()"
    assert loaded(imports, {"textual"}) == []


def test_the_event_structs_load_without_pyarrow_aiohttp_or_textual() -> None:
    heavy = {"pyarrow", "aiohttp", "textual", "websockets", "yaml"}
    assert loaded("import engine.events", heavy) == []
    assert loaded("from engine import Trade, BookTicker, LedgerEntry", heavy) == []


IGNORE = re.compile(r"#\s*type:\s*ignore(\[[\w,-]+\])?(.*)$")


def test_every_type_ignore_names_its_code_and_a_reason() -> None:
    bad = []
    for name, path in modules().items():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            m = IGNORE.search(line)
            if m and (not m.group(1) or not m.group(2).strip().lstrip("#").strip()):
                bad.append(f"{name}:{n}: {line.strip()}")
    assert bad == []
