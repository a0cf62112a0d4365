"""Recordings for tests: events written the way the recorder writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq

from engine.events import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Event,
    Kline,
    LedgerEntry,
    MiniTicker,
    OrderBookSnapshot,
    PartialDepth,
    Trade,
)
from engine.storage import layout, schemas
from engine.storage.recorder import LedgerBuffer
from tests import factories
from tests.helpers import SHARED

REC = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"
T0 = 1_723_161_300_000_000_000  # 2024-08-08T23:55:00Z in ns
MS0 = T0 // 1_000_000


def trade(ns: int, i: int = 1, symbol: str = "BTCUSDT", conn: int = 1) -> Trade:
    """The ``i``-th trade of a recording, received at ``ns`` (traded 1 ms before)."""
    ms = ns // 1_000_000
    return factories.trade(100 + i, symbol=symbol, price=61_000.5 + i, qty=0.25,
                           buyer_is_maker=bool(i % 2), event_time=ms, trade_time=ms - 1,
                           recv_ns=ns, conn=conn, best_match=True)


def book(ns: int, i: int = 1, symbol: str = "BTCUSDT") -> BookTicker:
    """The ``i``-th best bid/ask of a recording (connection 2), received at ``ns``."""
    return factories.book_ticker(5_000 + i, symbol=symbol, bid_price=61_000.0, bid_qty=1.5,
                                 ask_price=61_000.01, ask_qty=0.5, recv_ns=ns, conn=2)


EXAMPLES: dict[type[Event], Event] = {
    Trade: trade(T0 + 1, 7),
    AggTrade: factories.agg_trade(9, price=61_000.5, qty=0.1, first_trade_id=10,
                                  last_trade_id=12, buyer_is_maker=False, event_time=MS0,
                                  trade_time=MS0 - 1, recv_ns=T0 + 2, conn=1, best_match=True),
    Kline: factories.kline(MS0 - 60_000, open=1.0, close=2.0, high=3.0, low=0.5, volume=10.0,
                           closed=True, first_trade_id=1, last_trade_id=99, trades=99,
                           quote_volume=15.0, taker_buy_volume=4.0, taker_buy_quote_volume=6.0,
                           event_time=MS0, recv_ns=T0 + 3, conn=1),
    BookTicker: book(T0 + 4),
    PartialDepth: factories.partial_depth(77, bids=[(61_000.0, 1.0), (60_999.0, 2.0)],
                                          asks=[(61_001.0, 3.0)], recv_ns=T0 + 5, conn=1),
    DepthUpdate: factories.depth_update(78, 80, asks=[(61_001.0, 0.0), (61_002.0, 4.5)],
                                        event_time=MS0, recv_ns=T0 + 6, conn=1),
    MiniTicker: MiniTicker(recv_ns=T0 + 7, conn=1, event_time=MS0, symbol="BTCUSDT",
                           close=2.0, open=1.0, high=3.0, low=0.5, volume=10.0,
                           quote_volume=20.0),
    OrderBookSnapshot: OrderBookSnapshot(recv_ns=T0 + 8, conn=0, last_update_id=76,
                                         symbol="BTCUSDT", limit=1000,
                                         bids=[(61_000.0, 1.0)], asks=[(61_001.0, 3.0)]),
    LedgerEntry: factories.gap(79, stream="btcusdt@depth@100ms", start_ns=T0 + 5, end_ns=T0 + 6,
                             detail="U jumped", recv_ns=T0 + 9, conn=1),
}


def write(root: Path, events: list[Event], seqs: list[int] | None = None,
          name: str = "part-0") -> None:
    """Write events like the recorder does: one file per (kind, symbol), hive layout."""
    seqs = seqs if seqs is not None else list(range(len(events)))
    groups: dict[tuple[type, str], list[tuple[Event, int]]] = {}
    for event, seq in zip(events, seqs, strict=True):
        sym = "" if isinstance(event, LedgerEntry) else getattr(event, "symbol", "")
        groups.setdefault((type(event), sym), []).append((event, seq))
    for (typ, sym), rows in groups.items():
        buf: Any = LedgerBuffer() if typ is LedgerEntry else schemas.ColumnBuffer(typ)
        for event, seq in rows:
            buf.append(event, seq)
        kind = layout.LEDGER_DIR if typ is LedgerEntry else typ.kind
        folder = layout.partition_dir(root, kind, sym, rows[0][0].recv_ns)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(buf.take(), folder / f"{name}.parquet")


def builtins(events: list[Event]) -> list[Any]:
    return [(type(e).__name__, msgspec.to_builtins(e)) for e in events]
