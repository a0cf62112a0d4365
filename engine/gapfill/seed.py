"""Restart continuity: seed the id gate from the recording's tail (kill -9 included).

The recording may come from another exchange (the demo's ids start low, live Binance's
are in the billions): one ``aggTrades?limit=1`` (weight 4) per symbol checks that the
exchange is already past the recorded ids; when it is not, that symbol is not seeded
(live trades would otherwise look like duplicates).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from engine.binance.rest_rows import decode_agg_trades
from engine.errors import RestError
from engine.events import AggTrade, DepthUpdate, Trade
from engine.feed.gate import IdGate
from engine.rest.client import Priority, RestClient
from engine.storage.tail import last_recorded

log = logging.getLogger("binance_live.gapfill")

KlineSeeds = Callable[[dict[tuple[str, str], int]], None]


async def seed_gate(gate: IdGate, rest: RestClient, root: Path | str, symbols: Iterable[str],
                    seed_klines: KlineSeeds | None = None, timeout_s: float = 5.0) -> int:
    """Seed ``gate`` with each symbol's last recorded trade/aggTrade id (and diff-depth
    id), so the first live event reports the downtime as a gap; ``seed_klines`` gets the
    last recorded closed kline per (symbol, interval). Returns the seeds made."""
    symbols = list(symbols)
    tail = await asyncio.to_thread(last_recorded, root, symbols)
    seeded = 0
    for sym in symbols:
        recorded = {typ: tail.ids[(typ, sym)] for typ in (Trade, AggTrade)
                    if (typ, sym) in tail.ids}
        if not recorded:
            continue
        latest = await _latest_ids(rest, sym, timeout_s)
        same_exchange = False
        for typ, (last_id, recv_ns) in recorded.items():
            now_id = latest.get(typ, -1) if latest is not None else None
            if now_id is not None and now_id < last_id:
                log.warning("%s %s: recorded id %d is ahead of the exchange's %d (another "
                            "exchange or a reset): not seeded", sym, typ.kind, last_id, now_id)
                continue
            gate.seed(typ, sym, last_id, recv_ns)
            seeded += 1
            same_exchange = True
        depth = tail.ids.get((DepthUpdate, sym))
        if depth is not None and same_exchange:
            # diff depth has no REST history: seeding only makes the downtime a ledgered
            # gap (the book resyncs from a snapshot at start anyway)
            gate.seed(DepthUpdate, sym, *depth)
            seeded += 1
    if seed_klines is not None and tail.klines:
        seed_klines(tail.klines)
    return seeded


async def _latest_ids(rest: RestClient, symbol: str, timeout_s: float
                      ) -> dict[type, int] | None:
    """The exchange's newest aggTrade id and trade id (``l`` of the newest aggTrade)."""
    try:
        rows = await asyncio.wait_for(
            rest.fetch("/api/v3/aggTrades", {"symbol": symbol, "limit": 1},
                       decode_agg_trades, priority=Priority.BACKFILL), timeout_s)
    except (RestError, TimeoutError) as exc:
        log.info("%s: cannot check the latest ids (%s); seeding anyway", symbol, exc)
        return None
    if not rows:
        return {}
    return {AggTrade: rows[-1].a, Trade: rows[-1].l}
