"""binance-live's engine: socket → frames → decode → id gate → bus → consumers.

The names a user needs are importable from here; they load lazily (PEP 562), so
``import engine.events`` (or ``from engine import Trade``) does not pull in pyarrow,
aiohttp or the rest of the engine. ``tests/engine/test_exports.py`` pins the list.
No module of the engine imports a UI (``tests/test_architecture.py``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # the façade and its settings
    "Engine": "engine.engine",
    "EngineStatus": "engine.status",
    "Settings": "engine.config",
    "load_settings": "engine.config",
    "Subscription": "engine.subscription",
    # the bus
    "Bus": "engine.bus",
    "Mode": "engine.bus",
    "Overflow": "engine.bus",
    # events
    "Event": "engine.events",
    "Trade": "engine.events",
    "AggTrade": "engine.events",
    "Kline": "engine.events",
    "KlineBar": "engine.events",
    "BookTicker": "engine.events",
    "PartialDepth": "engine.events",
    "DepthUpdate": "engine.events",
    "MiniTicker": "engine.events",
    "OrderBookSnapshot": "engine.events",
    "BookTop": "engine.events",
    "LedgerEntry": "engine.events",
    "Ledger": "engine.events",
    # errors
    "EngineError": "engine.errors",
    "ConfigError": "engine.errors",
    "RestError": "engine.errors",
    "ReplayError": "engine.errors",
    "UnknownSymbols": "engine.errors",
    "ProtocolError": "engine.errors",
    # recordings
    "Replay": "engine.source.replay",
    "read_events": "engine.storage.reader",
}

__all__ = [
    "AggTrade",
    "BookTicker",
    "BookTop",
    "Bus",
    "ConfigError",
    "DepthUpdate",
    "Engine",
    "EngineError",
    "EngineStatus",
    "Event",
    "Kline",
    "KlineBar",
    "Ledger",
    "LedgerEntry",
    "MiniTicker",
    "Mode",
    "OrderBookSnapshot",
    "Overflow",
    "PartialDepth",
    "ProtocolError",
    "Replay",
    "ReplayError",
    "RestError",
    "Settings",
    "Subscription",
    "Trade",
    "UnknownSymbols",
    "load_settings",
    "read_events",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # next time: a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:
    from engine.bus import Bus, Mode, Overflow
    from engine.config import Settings, load_settings
    from engine.engine import Engine
    from engine.errors import (
        ConfigError,
        EngineError,
        ProtocolError,
        ReplayError,
        RestError,
        UnknownSymbols,
    )
    from engine.events import (
        AggTrade,
        BookTicker,
        BookTop,
        DepthUpdate,
        Event,
        Kline,
        KlineBar,
        Ledger,
        LedgerEntry,
        MiniTicker,
        OrderBookSnapshot,
        PartialDepth,
        Trade,
    )
    from engine.source.replay import Replay
    from engine.status import EngineStatus
    from engine.storage.reader import read_events
    from engine.subscription import Subscription
