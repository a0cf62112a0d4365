"""Id-continuity checks that feed the gap ledger.

Trade ids, aggregate-trade ids and diff-depth update ids are contiguous on Binance, so
any jump means events were missed (usually across a reconnect). Each jump becomes a
``FeedEvent(what="gap")`` on the bus, which the recorder writes to ``_events`` with the
last id received before it and the first id missing, so users know which intervals of a
recording are complete. Repeated or older ids (an overlap) are counted, not reported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.models import AggTrade, DepthUpdate, FeedEvent, Trade
from engine.streams import stream_name


class ContinuityChecker:
    KINDS = (Trade, AggTrade, DepthUpdate)

    def __init__(self, publish: Callable[[FeedEvent], None]) -> None:
        self.publish = publish
        self.gaps = 0
        self.duplicates = 0
        self._last: dict[tuple[type, str], tuple[int, int]] = {}  # -> (last id, recv_ns)

    def on_event(self, event: Any) -> None:
        typ = type(event)
        if typ is Trade:
            first = last = event.trade_id
        elif typ is AggTrade:
            first = last = event.agg_id
        elif typ is DepthUpdate:
            first, last = event.first_update_id, event.final_update_id
        else:
            return
        key = (typ, event.symbol)
        prev = self._last.get(key)
        if prev is not None:
            prev_id, prev_ns = prev
            if last <= prev_id:
                self.duplicates += 1
                return
            if first > prev_id + 1:
                self.gaps += 1
                self.publish(FeedEvent(
                    what="gap", stream=_name(typ, event.symbol), symbol=event.symbol,
                    first_missing=prev_id + 1, last_good=prev_id, start_ns=prev_ns,
                    end_ns=event.recv_ns, recv_ns=event.recv_ns, conn=event.conn,
                    detail=f"{first - prev_id - 1} ids missing"))
        self._last[key] = (last, event.recv_ns)


def _name(typ: type, symbol: str) -> str:
    kind = {Trade: "trade", AggTrade: "aggTrade", DepthUpdate: "depthUpdate"}[typ]
    return stream_name(kind, symbol)
