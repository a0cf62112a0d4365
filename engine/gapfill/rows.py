"""REST rows → the same events the streams produce (pure, no I/O).

Backfilled events carry ``backfilled=True`` and ``conn=0`` (REST, not a connection).
REST has no event time: a trade's is its trade time, a kline's its close time; klines
from REST have no first/last trade id (-1, as Binance sends for an empty bar).
"""

from __future__ import annotations

import time

from engine.binance.rest_rows import decode_agg_trades, decode_klines, decode_trades
from engine.events import MAX_DETAIL, AggTrade, Kline, KlineBar, Ledger, LedgerEntry, Trade

BACKFILL_CONN = 0  # connection id of REST-sourced events (stream connections start at 1)


def trades_from_rest(body: bytes, symbol: str, recv_ns: int,
                     conn: int = BACKFILL_CONN) -> list[Trade]:
    """historicalTrades rows as stream ``Trade``\\ s."""
    return [Trade(event_time=r.time, symbol=symbol, trade_id=r.id, price=r.price, qty=r.qty,
                  trade_time=r.time, buyer_is_maker=r.isBuyerMaker, best_match=r.isBestMatch,
                  recv_ns=recv_ns, conn=conn, backfilled=True)
            for r in decode_trades(body)]


def agg_trades_from_rest(body: bytes, symbol: str, recv_ns: int,
                         conn: int = BACKFILL_CONN) -> list[AggTrade]:
    """aggTrades rows as stream ``AggTrade``\\ s."""
    return [AggTrade(event_time=r.T, symbol=symbol, agg_id=r.a, price=r.p, qty=r.q,
                     first_trade_id=r.f, last_trade_id=r.l, trade_time=r.T,
                     buyer_is_maker=r.m, best_match=r.M, recv_ns=recv_ns, conn=conn,
                     backfilled=True)
            for r in decode_agg_trades(body)]


def klines_from_rest(body: bytes, symbol: str, interval: str, recv_ns: int, now_ms: int,
                     conn: int = BACKFILL_CONN) -> list[Kline]:
    """klines rows as stream ``Kline``\\ s; ``closed`` when the close time is before
    ``now_ms`` (exchange time)."""
    out = []
    for r in decode_klines(body):
        bar = KlineBar(open_time=r.open_time, close_time=r.close_time, symbol=symbol,
                       interval=interval, first_trade_id=-1, last_trade_id=-1, open=r.open,
                       close=r.close, high=r.high, low=r.low, volume=r.volume,
                       trades=r.trades, closed=r.close_time < now_ms,
                       quote_volume=r.quote_volume, taker_buy_volume=r.taker_buy_volume,
                       taker_buy_quote_volume=r.taker_buy_quote_volume)
        out.append(Kline(event_time=r.close_time, symbol=symbol, bar=bar, recv_ns=recv_ns,
                         conn=conn, backfilled=True))
    return out


def event_id(event: Trade | AggTrade) -> int:
    return event.trade_id if isinstance(event, Trade) else event.agg_id


def gap_range(entry: LedgerEntry) -> tuple[int, int]:
    """``(first_missing, last_missing)`` of a gap entry; (-1, -1) when it names none."""
    if entry.first_missing < 0 or entry.last_missing < entry.first_missing:
        return -1, -1
    return entry.first_missing, entry.last_missing


def backfill_entry(what: Ledger, stream: str, symbol: str, first: int, last: int,
                   last_good: int, start_ns: int, detail: str) -> LedgerEntry:
    """The ledger entry that ends a backfill (``backfill`` / ``backfill_failed``)."""
    now = time.time_ns()
    return LedgerEntry(what=what, stream=stream, symbol=symbol, first_missing=first,
                       last_good=last_good, start_ns=start_ns or now, end_ns=now, recv_ns=now,
                       conn=BACKFILL_CONN, detail=detail[:MAX_DETAIL], last_missing=last)
