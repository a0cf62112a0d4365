"""The front-end's own settings: the ``ui`` section and ``verbose`` of the settings file.

The engine validates its sections and skips these (``engine.config.FRONT_END_KEYS``);
they are validated here with the same schema machinery, so a bad value is the same
one-line error naming the key, the value and what is allowed (exit 2). Defaults are
written here and only here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ConfigError, Settings, build, load_document, settings_from
from tui.keys import BINDING_IDS

THEMES = ("dark", "light", "colorblind")
_KEY_NAME = re.compile(r"^[^\s=]+$")


@dataclass(frozen=True)
class Ui:
    refresh_hz: float = field(default=15.0, metadata={"min": 1.0, "max": 60.0})
    theme: str = field(default="dark", metadata={"choices": THEMES})
    status_interval_s: float = field(default=5.0, metadata={"min": 0.1})
    # a trade is "large" (highlighted on the tape) at this notional (0 = off) ...
    large_trade_notional: float = field(default=0.0, metadata={"min": 0.0})
    # ... or at this multiple of the rolling median notional (0 = off)
    large_trade_multiple: float = field(default=10.0, metadata={"min": 0.0, "max": 10_000.0})
    ladder_levels: int = field(default=30, metadata={"min": 5, "max": 500})
    keymap: tuple[str, ...] = ()  # "binding_id=key" items, e.g. "record=R" (see README)

    def remap(self) -> dict[str, str]:
        """The keymap as {binding id: key} (validated at load)."""
        return dict(item.split("=", 1) for item in self.keymap)


@dataclass(frozen=True)
class AppSettings:
    """Everything the settings file says: the engine's part and the front-end's."""

    engine: Settings = field(default_factory=Settings)
    ui: Ui = Ui()
    verbose: bool = False  # headless: print every event


def check_keymap(items: Iterable[str]) -> None:
    """Each item is ``binding_id=key`` with a known id and a key name."""
    for item in items:
        ident, sep, key = item.partition("=")
        if not sep:
            raise ConfigError(f"ui.keymap: {item!r} is not allowed; expected binding_id=key "
                              "such as record=R")
        if ident not in BINDING_IDS:
            raise ConfigError(f"ui.keymap: {item!r}: unknown binding id {ident!r}; allowed: "
                              + ", ".join(BINDING_IDS))
        if not _KEY_NAME.match(key):
            raise ConfigError(f"ui.keymap: {item!r}: {key!r} is not a key name; expected "
                              "one such as R, space, ctrl+r or f5")


def app_settings_from(data: Mapping[str, Any]) -> AppSettings:
    engine = settings_from(data)
    ui_data = data.get("ui", {})
    if ui_data is None:
        ui_data = {}
    if not isinstance(ui_data, dict):
        raise ConfigError(f"ui: expected a mapping, got {ui_data!r}")
    ui: Ui = build(Ui, ui_data, "ui")
    check_keymap(ui.keymap)
    verbose = data.get("verbose", False)
    if not isinstance(verbose, bool):
        raise ConfigError(f"verbose: {verbose!r} is not allowed; expected true or false")
    return AppSettings(engine, ui, verbose)


def load_app_settings(path: Path | None = None,
                      overrides: Iterable[tuple[str, Any]] = ()) -> AppSettings:
    """Defaults ← settings file ← overrides, every section validated (ConfigError)."""
    return app_settings_from(load_document(path, overrides))
