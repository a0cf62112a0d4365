"""Binance stream names: building them from config and parsing them back.

One place knows the naming grammar (``<symbol>@<kind>[_<param>][@<speed>]``) and the
sets of values Binance allows, so the config validator, the stream manager and the
decoder cannot disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KLINE_INTERVALS: tuple[str, ...] = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
    "1d", "3d", "1w", "1M",
)  # fmt: skip
PARTIAL_DEPTH_LEVELS: tuple[int, ...] = (5, 10, 20)
DEPTH_SPEEDS_MS: tuple[int, ...] = (100, 1000)
SNAPSHOT_LIMITS: tuple[int, ...] = (5, 10, 20, 50, 100, 500, 1000, 5000)
TICKER_WINDOWS: tuple[str, ...] = ("1h", "4h", "1d")

# Stream kinds the engine subscribes to, in display order.
STREAM_KINDS: tuple[str, ...] = (
    "trade", "aggTrade", "kline", "bookTicker", "depthPartial", "depthUpdate", "miniTicker",
)  # fmt: skip

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")


@dataclass(frozen=True, slots=True)
class StreamRef:
    """A parsed stream name. ``symbol`` is upper-case, empty for all-market streams."""

    name: str
    kind: str
    symbol: str
    param: str = ""  # kline interval, depth levels, ticker window
    speed_ms: int = 0
    is_array: bool = False


def stream_name(kind: str, symbol: str, *, interval: str = "1m", levels: int = 20,
                speed_ms: int = 100) -> str:
    """The wire name of one stream of one symbol."""
    sym = symbol.lower()
    if kind in ("trade", "aggTrade", "bookTicker", "miniTicker"):
        return f"{sym}@{kind}"
    if kind == "kline":
        return f"{sym}@kline_{interval}"
    if kind == "depthPartial":
        return f"{sym}@depth{levels}" + ("@100ms" if speed_ms == 100 else "")
    if kind == "depthUpdate":
        return f"{sym}@depth" + ("@100ms" if speed_ms == 100 else "")
    raise ValueError(f"unknown stream kind {kind!r}")


_SIMPLE = {
    "trade": "trade",
    "aggTrade": "aggTrade",
    "bookTicker": "bookTicker",
    "miniTicker": "miniTicker",
    "ticker": "ticker",
    "avgPrice": "avgPrice",
    "referencePrice": "referencePrice",
    "blockTrade": "blockTrade",
}


def parse_stream_name(name: str) -> StreamRef | None:
    """Parse any Binance spot stream name; None when it is not one."""
    if name == "!serverShutdown":
        return StreamRef(name, "serverShutdown", "")
    head, _, rest = name.partition("@")
    if not rest and not head.startswith("!"):
        return None
    parts = rest.split("@") if rest else [""]
    base, modifiers = parts[0], parts[1:]
    is_array = head.startswith("!")
    symbol = "" if is_array else head.upper()
    if is_array:
        # "!miniTicker@arr", "!ticker_1h@arr", "!bookTicker": kind is in the head.
        base, modifiers = head[1:], [p for p in parts if p]
        if modifiers and modifiers[-1] == "arr":
            modifiers = modifiers[:-1]
    speed = 0
    if modifiers and modifiers[-1] in ("100ms", "1000ms"):
        speed = int(modifiers[-1][:-2])
        modifiers = modifiers[:-1]
    if base in _SIMPLE and not modifiers:
        return StreamRef(name, _SIMPLE[base], symbol, is_array=is_array and base != "bookTicker")
    if base.startswith("kline_"):
        interval = base[6:]
        if interval in KLINE_INTERVALS and modifiers in ([], ["+08:00"]):
            return StreamRef(name, "kline", symbol, interval)
        return None
    if base.startswith("ticker_") and base[7:] in TICKER_WINDOWS and not modifiers:
        return StreamRef(name, "ticker", symbol, base[7:], is_array=is_array)
    if base == "depth" and not modifiers:
        return StreamRef(name, "depthUpdate", symbol, speed_ms=speed or 1000)
    if base.startswith("depth") and base[5:].isdigit() and not modifiers \
            and int(base[5:]) in PARTIAL_DEPTH_LEVELS:
        return StreamRef(name, "depthPartial", symbol, base[5:], speed_ms=speed or 1000)
    return None
