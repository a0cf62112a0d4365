"""Stream-name grammar: validation and parsing of ``<symbol>@<kind>`` names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .klines import INTERVALS

_SYM = r"[a-z0-9]{1,20}"
_RE = re.compile(
    rf"^(?P<sym>{_SYM})@(?:"
    r"(?P<simple>trade|aggTrade|bookTicker|miniTicker|ticker)"
    r"|depth(?P<levels>5|10|20)?(?P<fast>@100ms)?"
    r"|kline_(?P<iv>[0-9]{1,2}[smhdwM])(?P<tz>@\+08:00)?"
    r")$"
)
ALL_MINI = "!miniTicker@arr"


@dataclass(frozen=True)
class Stream:
    """A parsed stream name. `kind` is trade/aggTrade/bookTicker/miniTicker/ticker/
    depth (diff) /partial/kline/allMini; `symbol` is uppercase ("" for all-market)."""

    name: str
    kind: str
    symbol: str
    levels: int = 0
    fast: bool = False
    interval: str = ""
    tz_ms: int = 0


def parse_stream(name: str) -> Stream | None:
    """Parse a stream name; None when it is malformed (control code 2 "invalid stream")."""
    if name == ALL_MINI:
        return Stream(name, "allMini", "")
    m = _RE.match(name)
    if m is None:
        return None
    sym = m["sym"].upper()
    if m["simple"]:
        return Stream(name, m["simple"], sym)
    if m["iv"]:
        if m["iv"] not in INTERVALS:
            return None
        return Stream(name, "kline", sym, interval=m["iv"], tz_ms=8 * 3_600_000 if m["tz"] else 0)
    if m["levels"]:
        return Stream(name, "partial", sym, levels=int(m["levels"]), fast=bool(m["fast"]))
    return Stream(name, "depth", sym, fast=bool(m["fast"]))
