"""Settings: the schema (defaults, allowed values), the files they come from, validation.

``load_settings()`` is the engine's entry point: defaults ← settings file ← overrides,
validated into frozen dataclasses, or one ``ConfigError`` line.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.config.files import config_path, load_document, user_config_path
from engine.config.schema import (
    FRONT_END_KEYS,
    LIVE_REST_URL,
    LIVE_WS_URL,
    Connection,
    DiffDepthStream,
    KlineStream,
    OrderBook,
    PartialDepthStream,
    Settings,
    Storage,
    Streams,
    StreamToggle,
)
from engine.config.validate import build, parse_hhmm, settings_from
from engine.errors import ConfigError


def load_settings(path: Path | None = None,
                  overrides: Iterable[tuple[str, Any]] = ()) -> Settings:
    """Defaults ← settings file ← overrides, then validation (raises ConfigError)."""
    return settings_from(load_document(path, overrides))


__all__ = [
    "FRONT_END_KEYS",
    "LIVE_REST_URL",
    "LIVE_WS_URL",
    "ConfigError",
    "Connection",
    "DiffDepthStream",
    "KlineStream",
    "OrderBook",
    "PartialDepthStream",
    "Settings",
    "Storage",
    "StreamToggle",
    "Streams",
    "build",
    "config_path",
    "load_document",
    "load_settings",
    "parse_hhmm",
    "settings_from",
    "user_config_path",
]
