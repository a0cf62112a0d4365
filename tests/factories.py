"""Event factories for tests: one place that knows how to build each test event.

Every factory takes the event's identifying id first, fills whatever a test rarely cares
about with fixed defaults (symbol ``BTCUSDT``, price/qty 1.0, ``recv_ns`` and ``conn`` 0,
as on a freshly built struct) and takes keyword arguments, named like the struct's
fields, for everything else. Any other field of the struct (``best_match``,
``backfilled``, ...) passes straight through ``**fields``.
"""

from __future__ import annotations

from typing import Any

from engine.events import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    KlineBar,
    LedgerEntry,
    Level,
    PartialDepth,
    Trade,
)

SYMBOL = "BTCUSDT"


def trade(trade_id: int = 1, *, symbol: str = SYMBOL, price: float = 1.0, qty: float = 1.0,
          buyer_is_maker: bool = False, event_time: int = 1, trade_time: int | None = None,
          recv_ns: int = 0, conn: int = 0, **fields: Any) -> Trade:
    """A trade; ``trade_time`` defaults to ``event_time``."""
    return Trade(event_time=event_time, symbol=symbol, trade_id=trade_id, price=price, qty=qty,
                 trade_time=event_time if trade_time is None else trade_time,
                 buyer_is_maker=buyer_is_maker, recv_ns=recv_ns, conn=conn, **fields)


def agg_trade(agg_id: int = 1, *, symbol: str = SYMBOL, price: float = 1.0, qty: float = 1.0,
              first_trade_id: int | None = None, last_trade_id: int | None = None,
              buyer_is_maker: bool = True, event_time: int = 1, trade_time: int | None = None,
              recv_ns: int = 0, conn: int = 0, **fields: Any) -> AggTrade:
    """An aggregate trade of one trade: ``first_trade_id`` defaults to ``agg_id``,
    ``last_trade_id`` to ``first_trade_id`` and ``trade_time`` to ``event_time``."""
    first = agg_id if first_trade_id is None else first_trade_id
    return AggTrade(event_time=event_time, symbol=symbol, agg_id=agg_id, price=price, qty=qty,
                    first_trade_id=first,
                    last_trade_id=first if last_trade_id is None else last_trade_id,
                    trade_time=event_time if trade_time is None else trade_time,
                    buyer_is_maker=buyer_is_maker, recv_ns=recv_ns, conn=conn, **fields)


def depth_update(first_update_id: int = 1, final_update_id: int | None = None, *,
                 symbol: str = SYMBOL, bids: list[Level] | None = None,
                 asks: list[Level] | None = None, event_time: int = 1, recv_ns: int = 0,
                 conn: int = 0, **fields: Any) -> DepthUpdate:
    """A diff ``U..u`` (``final_update_id`` defaults to ``first_update_id``); no levels
    unless given."""
    return DepthUpdate(event_time=event_time, symbol=symbol, first_update_id=first_update_id,
                       final_update_id=first_update_id if final_update_id is None
                       else final_update_id,
                       bids=[] if bids is None else bids, asks=[] if asks is None else asks,
                       recv_ns=recv_ns, conn=conn, **fields)


def book_ticker(update_id: int = 1, *, symbol: str = SYMBOL, bid_price: float = 1.0,
                bid_qty: float = 1.0, ask_price: float = 2.0, ask_qty: float = 1.0,
                recv_ns: int = 0, conn: int = 0, **fields: Any) -> BookTicker:
    """A best bid/ask: 1.0 x 1.0 bid, 2.0 x 1.0 ask unless given."""
    return BookTicker(update_id=update_id, symbol=symbol, bid_price=bid_price, bid_qty=bid_qty,
                      ask_price=ask_price, ask_qty=ask_qty, recv_ns=recv_ns, conn=conn,
                      **fields)


def partial_depth(last_update_id: int = 1, *, symbol: str = SYMBOL,
                  bids: list[Level] | None = None, asks: list[Level] | None = None,
                  recv_ns: int = 0, conn: int = 0, **fields: Any) -> PartialDepth:
    """A partial-depth snapshot; empty sides unless given."""
    return PartialDepth(last_update_id=last_update_id, symbol=symbol,
                        bids=[] if bids is None else bids, asks=[] if asks is None else asks,
                        recv_ns=recv_ns, conn=conn, **fields)


def kline(open_time: int = 0, *, symbol: str = SYMBOL, interval: str = "1m",
          open: float = 1.0, close: float | None = None, high: float | None = None,
          low: float | None = None, volume: float = 1.0, closed: bool = True,
          first_trade_id: int = 0, last_trade_id: int = 0, trades: int = 1,
          quote_volume: float = 0.0, taker_buy_volume: float = 0.0,
          taker_buy_quote_volume: float = 0.0, event_time: int | None = None,
          recv_ns: int = 0, conn: int = 0, **fields: Any) -> Kline:
    """A kline event around one bar opening at ``open_time`` and closing 59.999 s later.

    ``close`` defaults to ``open``, ``high``/``low`` to the larger/smaller of the two,
    ``event_time`` to ``open_time``.
    """
    close = open if close is None else close
    bar = KlineBar(open_time=open_time, close_time=open_time + 59_999, symbol=symbol,
                   interval=interval, first_trade_id=first_trade_id,
                   last_trade_id=last_trade_id, open=open, close=close,
                   high=max(open, close) if high is None else high,
                   low=min(open, close) if low is None else low, volume=volume,
                   trades=trades, closed=closed, quote_volume=quote_volume,
                   taker_buy_volume=taker_buy_volume,
                   taker_buy_quote_volume=taker_buy_quote_volume)
    return Kline(event_time=open_time if event_time is None else event_time, symbol=symbol,
                 bar=bar, recv_ns=recv_ns, conn=conn, **fields)


def gap(first_missing: int, last_missing: int = -1, *, stream: str = "btcusdt@trade",
        symbol: str = SYMBOL, last_good: int | None = None, **fields: Any) -> LedgerEntry:
    """A ``gap`` ledger entry; ``last_good`` defaults to ``first_missing - 1``. Other
    ledger entries are plain ``LedgerEntry(what=...)``."""
    return LedgerEntry(what="gap", stream=stream, symbol=symbol, first_missing=first_missing,
                     last_missing=last_missing,
                     last_good=first_missing - 1 if last_good is None else last_good,
                     **fields)
