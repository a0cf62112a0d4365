"""The engine's public names: pinned, importable from ``engine``, and loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import engine
from tests.helpers import ROOT

PUBLIC = [
    "AggTrade", "BookTicker", "BookTop", "Bus", "ConfigError", "DepthUpdate", "Engine",
    "EngineError", "EngineStatus", "Event", "Kline", "KlineBar", "Ledger", "LedgerEntry",
    "MiniTicker", "Mode", "OrderBookSnapshot", "Overflow", "PartialDepth", "ProtocolError",
    "Replay", "ReplayError", "RestError", "Settings", "Subscription", "Trade", "UnknownSymbols",
    "load_settings", "read_events",
]


def test_the_public_names_are_pinned_and_each_resolves() -> None:
    assert engine.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(engine, name) is not None
        assert name in dir(engine)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        engine.Nope  # noqa: B018 - the point of the test
    except AttributeError as exc:
        assert "no attribute 'Nope'" in str(exc)
    else:
        raise AssertionError("engine.Nope resolved")


def test_importing_the_package_loads_nothing_else() -> None:
    code = ("import sys, engine; "
            "print(sorted(m for m in sys.modules if m.startswith('engine.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, check=True).stdout.strip()
    assert out == "[]"
