"""Defaults are written once, in the schemas (``engine/config/schema.py`` for the engine's
sections, ``tui/settings.py`` for ``ui`` and ``verbose``); ``config/settings.yaml`` and the
README's configuration table must state exactly those keys with exactly those defaults."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from engine.config import Settings
from tests.helpers import ROOT
from tui.settings import AppSettings


def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → default, for a dataclass instance (nested) or a plain mapping."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    elif isinstance(value, dict):
        items = value
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in items.items():
        out.update(leaves(item, f"{prefix}.{key}" if prefix else key))
    return out


def schema() -> dict[str, Any]:
    app = AppSettings()
    engine_keys = leaves(Settings())
    return {**engine_keys, **leaves(app.ui, "ui"), "verbose": app.verbose}


def normal(value: Any) -> Any:
    """One spelling per value: tuples as lists, ints as floats."""
    if isinstance(value, tuple | list):
        return [normal(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_settings_yaml_states_every_default_exactly() -> None:
    stated = leaves(yaml.safe_load((ROOT / "config" / "settings.yaml").read_text()))
    want = schema()
    assert sorted(stated) == sorted(want)
    assert {k: normal(v) for k, v in stated.items()} == {k: normal(v) for k, v in want.items()}


# -- the README table --------------------------------------------------------------------------

ROW = re.compile(r"^\| (`[^|]+`) \| ([^|]+) \|")


def readme_rows() -> dict[str, str]:
    """Dotted key → the default cell's text, from the README's configuration table.

    A row may name several keys: ``a.b.c`` / ``.d`` / ``e`` (siblings of ``a.b.c``) with
    defaults ``x`` / ``y`` / ``z``.
    """
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    out: dict[str, str] = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if m is None or m.group(1) == "`key`":
            continue
        keys = [k.strip().strip("`") for k in m.group(1).split(" / ")]
        values = [v.strip().strip("`") for v in m.group(2).split(" / ")]
        assert len(keys) == len(values), line
        parent = keys[0].rpartition(".")[0]
        for key, value in zip(keys, values, strict=True):
            full = key if key == keys[0] else f"{parent}.{key.lstrip('.')}"
            out[full] = value
    return out


def shown(value: Any) -> str:
    """A default as the README writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    if value == "":
        return '""'
    return str(value)


def test_the_readme_table_has_every_key_with_its_default() -> None:
    rows = readme_rows()
    want = {key: shown(value) for key, value in schema().items()}
    assert sorted(rows) == sorted(want)
    assert rows == want
