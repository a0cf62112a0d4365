"""Typed market events, decoded once from Binance JSON with msgspec.

This module is the vocabulary every other part speaks; it imports msgspec and nothing
else of the engine, so ``import engine.events`` stays cheap (no pyarrow, no aiohttp).

Field names are readable; the wire keys are given with ``msgspec.field(name=...)``.
Prices and quantities arrive as decimal strings and are decoded straight into floats
(msgspec ``strict=False``), times are epoch-ms ints. Unknown keys are ignored and keys
Binance removed over the years (trade ``b``/``a``) are optional, so old and new frames
decode with the same types.

Every event carries two local fields that are never on the wire: ``recv_ns`` (local
receive time, ns since epoch) and ``conn`` (the id of the connection it came on).
They are filled in by the decoder, not by JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from msgspec import Struct, field

Level = tuple[float, float]


class Event(Struct, gc=False, kw_only=True):
    """Base of every market event; ``kind`` names its stream type."""

    kind: ClassVar[str] = "event"
    recv_ns: int = field(default=0, name="__recv_ns")
    conn: int = field(default=0, name="__conn")


class Trade(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "trade"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    trade_id: int = field(name="t")
    price: float = field(name="p")
    qty: float = field(name="q")
    trade_time: int = field(name="T")
    buyer_is_maker: bool = field(name="m")
    best_match: bool = field(default=True, name="M")
    # Removed by Binance on 2024-06-18; still present in older recordings.
    buyer_order_id: int | None = field(default=None, name="b")
    seller_order_id: int | None = field(default=None, name="a")
    # Local: True when fetched from REST to fill a gap (engine.gapfill), never on the wire.
    backfilled: bool = field(default=False, name="__backfilled")


class AggTrade(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "aggTrade"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    agg_id: int = field(name="a")
    price: float = field(name="p")
    qty: float = field(name="q")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="l")
    trade_time: int = field(name="T")
    buyer_is_maker: bool = field(name="m")
    best_match: bool = field(default=True, name="M")
    backfilled: bool = field(default=False, name="__backfilled")  # local, see Trade


class BlockTrade(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "blockTrade"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    trade_id: int = field(name="t")
    price: float = field(name="p")
    qty: float = field(name="q")
    trade_time: int = field(name="T")
    buyer_is_maker: bool = field(name="m")


class KlineBar(Struct, gc=False, kw_only=True):
    open_time: int = field(name="t")
    close_time: int = field(name="T")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    first_trade_id: int = field(name="f")
    last_trade_id: int = field(name="L")
    open: float = field(name="o")
    close: float = field(name="c")
    high: float = field(name="h")
    low: float = field(name="l")
    volume: float = field(name="v")
    trades: int = field(name="n")
    closed: bool = field(name="x")
    quote_volume: float = field(name="q")
    taker_buy_volume: float = field(name="V")
    taker_buy_quote_volume: float = field(name="Q")


class Kline(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "kline"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    bar: KlineBar = field(name="k")
    backfilled: bool = field(default=False, name="__backfilled")  # local, see Trade


class BookTicker(Event, gc=False, kw_only=True):
    """Spot bookTicker has no event time; ``u`` shares the depth update-id space."""

    kind: ClassVar[str] = "bookTicker"
    update_id: int = field(name="u")
    symbol: str = field(name="s")
    bid_price: float = field(name="b")
    bid_qty: float = field(name="B")
    ask_price: float = field(name="a")
    ask_qty: float = field(name="A")
    # Futures-style frames (and some third-party fixtures) carry these; spot does not.
    event_time: int = field(default=0, name="E")
    transaction_time: int = field(default=0, name="T")


class PartialDepth(Event, gc=False, kw_only=True):
    """Top-N snapshot; carries no symbol on the wire, so the decoder fills it from the stream."""

    kind: ClassVar[str] = "depthPartial"
    last_update_id: int = field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]
    symbol: str = field(default="", name="__symbol")


class DepthUpdate(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "depthUpdate"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    first_update_id: int = field(name="U")
    final_update_id: int = field(name="u")
    bids: list[Level] = field(name="b")
    asks: list[Level] = field(name="a")
    # Futures only (``pu``/``T``); tolerated so futures captures decode too.
    prev_final_update_id: int | None = field(default=None, name="pu")
    transaction_time: int = field(default=0, name="T")


class MiniTicker(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "miniTicker"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    close: float = field(name="c")
    open: float = field(name="o")
    high: float = field(name="h")
    low: float = field(name="l")
    volume: float = field(name="v")
    quote_volume: float = field(name="q")


class Ticker(Event, gc=False, kw_only=True):
    """24hrTicker and the rolling-window ``1hTicker``/``4hTicker``/``1dTicker``."""

    kind: ClassVar[str] = "ticker"
    event_type: str = field(name="e")
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    price_change: float = field(name="p")
    price_change_pct: float = field(name="P")
    weighted_avg: float = field(name="w")
    open: float = field(name="o")
    high: float = field(name="h")
    low: float = field(name="l")
    close: float = field(name="c")
    volume: float = field(name="v")
    quote_volume: float = field(name="q")
    open_time: int = field(name="O")
    close_time: int = field(name="C")
    first_trade_id: int = field(name="F")
    last_trade_id: int = field(name="L")
    trades: int = field(name="n")
    prev_close: float | None = field(default=None, name="x")
    last_qty: float | None = field(default=None, name="Q")
    bid_price: float | None = field(default=None, name="b")
    bid_qty: float | None = field(default=None, name="B")
    ask_price: float | None = field(default=None, name="a")
    ask_qty: float | None = field(default=None, name="A")


class AvgPrice(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "avgPrice"
    event_time: int = field(name="E")
    symbol: str = field(name="s")
    interval: str = field(name="i")
    price: float = field(name="w")
    trade_time: int = field(name="T")


class ReferencePrice(Event, gc=False, kw_only=True):
    kind: ClassVar[str] = "referencePrice"
    symbol: str = field(name="s")
    price: float | None = field(name="r")
    engine_time: int = field(name="t")


class ServerShutdown(Event, gc=False, kw_only=True):
    """Binance is about to close the connection: reconnect now."""

    kind: ClassVar[str] = "serverShutdown"
    event_time: int = field(name="E")


class OrderBookSnapshot(Event, gc=False, kw_only=True):
    """A REST ``/api/v3/depth`` reply, published by the snapshot poller."""

    kind: ClassVar[str] = "orderBookSnapshot"
    last_update_id: int = field(name="lastUpdateId")
    bids: list[Level]
    asks: list[Level]
    symbol: str = field(default="", name="__symbol")
    limit: int = field(default=0, name="__limit")


class Ledger(StrEnum):
    """What a ledger entry records (the ``what`` column of ``_ledger``)."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    STALE = "stale"  # a silent connection replaced
    SERVER_SHUTDOWN = "server_shutdown"
    ROLLOVER = "rollover"  # a connection replaced make-before-break
    ROLLOVER_FAILED = "rollover_failed"
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    GAP = "gap"  # ids first_missing..last_missing not received
    GAP_FILLED = "gap_filled"  # late ids filled that whole gap: it is retracted
    BACKFILL = "backfill"  # a gap (or missed klines) fetched from REST
    BACKFILL_FAILED = "backfill_failed"
    RESYNC = "resync"  # a local order book rebuilt from a snapshot
    RECORDER_FAILED = "recorder_failed"  # rows not recorded while storage failed


MAX_DETAIL = 500  # characters of a ledger entry's detail (a bound on the row, not a UI cut)

# Entries that end a connection: the streams it carried may have missed data.
LEDGER_DISCONNECTS = frozenset({Ledger.DISCONNECT, Ledger.STALE, Ledger.SERVER_SHUTDOWN})


class LedgerEntry(Event, gc=False, kw_only=True):
    """One row of the continuity ledger: what happened to the feed, not to the market.

    ``what`` is a :class:`Ledger` value. Gaps name their ids ``first_missing`` ..
    ``last_missing`` (``last_good`` = first_missing - 1); ``start_ns``/``end_ns`` bound
    the affected local-time window.
    """

    kind: ClassVar[str] = "ledger"
    what: str
    stream: str = ""
    symbol: str = ""
    first_missing: int = -1
    last_good: int = -1
    start_ns: int = 0
    end_ns: int = 0
    detail: str = ""
    last_missing: int = -1  # last id of a gap / gap_filled range (-1: not a gap)


class BookTop(Event, gc=False, kw_only=True):
    """The top of a local order book after an applied diff (engine.book.keeper), for UIs.

    Local only: never on the wire and not recorded. Prices are NaN when a side is empty.
    ``recv_ns`` is the receive time of the diff that produced it.
    """

    kind: ClassVar[str] = "bookTop"
    symbol: str
    update_id: int
    bid_price: float
    bid_qty: float
    ask_price: float
    ask_qty: float
    mid: float
    spread: float
    spread_bps: float
    imbalance: float  # (bid - ask) / (bid + ask) quantity over the levels below
    bids: list[Level]
    asks: list[Level]


MARKET_EVENT_TYPES: tuple[type[Event], ...] = (
    Trade,
    AggTrade,
    BlockTrade,
    Kline,
    BookTicker,
    PartialDepth,
    DepthUpdate,
    MiniTicker,
    Ticker,
    AvgPrice,
    ReferencePrice,
    ServerShutdown,
    OrderBookSnapshot,
)

# Local events the bus routes only to consumers that name them (never "every event").
LOCAL_EVENT_TYPES: tuple[type[Event], ...] = (LedgerEntry, BookTop)
ROUTED_EVENT_TYPES: tuple[type[Event], ...] = (*MARKET_EVENT_TYPES, *LOCAL_EVENT_TYPES)
EVENT_TYPES_BY_KIND: dict[str, type[Event]] = {t.kind: t for t in ROUTED_EVENT_TYPES}


def to_builtins(value: Struct) -> dict[str, object]:
    """Readable dict (field names, not wire keys) for printing and tests."""
    out: dict[str, object] = {"kind": value.kind} if isinstance(value, Event) else {}
    for name in value.__struct_fields__:
        item = getattr(value, name)
        out[name] = to_builtins(item) if isinstance(item, Struct) else item
    return out
