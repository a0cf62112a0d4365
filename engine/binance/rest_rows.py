"""Binance REST reply bodies as typed rows: one schema and one decoder per endpoint.

Pure wire knowledge (no I/O): ``engine.rest`` fetches the bytes, ``engine.gapfill`` and
``engine.view`` turn rows into events or candles. Numbers that Binance sends as decimal
strings decode straight into floats (``strict=False``); unknown keys are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgspec

from engine.events import OrderBookSnapshot


class RestKline(msgspec.Struct, array_like=True, gc=False):
    """One ``/api/v3/klines`` row (the trailing "ignore" element is dropped)."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    close_time: int
    quote_volume: float
    trades: int
    taker_buy_volume: float
    taker_buy_quote_volume: float


class TradeRow(msgspec.Struct, gc=False):
    """One ``/api/v3/historicalTrades`` (or ``/trades``) row."""

    id: int
    price: float
    qty: float
    time: int
    isBuyerMaker: bool  # noqa: N815 - Binance's key
    isBestMatch: bool = True  # noqa: N815


class AggTradeRow(msgspec.Struct, gc=False):
    """One ``/api/v3/aggTrades`` row (the stream payload's keys, without e/E/s)."""

    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool
    M: bool = True


class _ServerTime(msgspec.Struct):
    serverTime: int  # noqa: N815 - wire key


class _ErrorBody(msgspec.Struct):
    code: int
    msg: str


class _RateLimit(msgspec.Struct):
    rateLimitType: str  # noqa: N815 - wire names
    interval: str
    intervalNum: int  # noqa: N815
    limit: int


class _Symbol(msgspec.Struct):
    symbol: str
    status: str


class _Info(msgspec.Struct):
    rateLimits: list[_RateLimit] = []  # noqa: N815
    symbols: list[_Symbol] = []


@dataclass(frozen=True)
class ExchangeInfo:
    """What ``/api/v3/exchangeInfo`` says: the symbols listed and the weight limit."""

    symbols: dict[str, str] = field(default_factory=dict)  # symbol -> status (TRADING, ...)
    weight_limit: int | None = None
    weight_window_s: float | None = None


_SECONDS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}

_klines = msgspec.json.Decoder(list[RestKline], strict=False)
_trades = msgspec.json.Decoder(list[TradeRow], strict=False)
_aggs = msgspec.json.Decoder(list[AggTradeRow], strict=False)
_time = msgspec.json.Decoder(_ServerTime)
_error = msgspec.json.Decoder(_ErrorBody)
_info = msgspec.json.Decoder(_Info)
_depth = msgspec.json.Decoder(OrderBookSnapshot, strict=False)

# What a malformed body raises; ``engine.rest.client`` turns these into RestBadReply.
DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError)


def decode_klines(body: bytes) -> list[RestKline]:
    return _klines.decode(body)


def decode_trades(body: bytes) -> list[TradeRow]:
    return _trades.decode(body)


def decode_agg_trades(body: bytes) -> list[AggTradeRow]:
    return _aggs.decode(body)


def decode_server_time(body: bytes) -> int:
    """``/api/v3/time``: the exchange clock, epoch ms."""
    return _time.decode(body).serverTime


def decode_error(body: bytes) -> tuple[int, str] | None:
    """Binance's ``{"code": -1121, "msg": "..."}`` error body; None when it is not one."""
    try:
        err = _error.decode(body)
    except DECODE_ERRORS:
        return None
    return err.code, err.msg


def decode_depth(body: bytes, symbol: str, limit: int, recv_ns: int) -> OrderBookSnapshot:
    """A ``/api/v3/depth`` reply as the event the poller publishes and books load."""
    snap = _depth.decode(body)
    snap.symbol = symbol
    snap.limit = limit
    snap.recv_ns = recv_ns
    return snap


def decode_exchange_info(body: bytes) -> ExchangeInfo:
    info = _info.decode(body)
    limit = window = None
    for rl in info.rateLimits:
        if rl.rateLimitType == "REQUEST_WEIGHT" and rl.interval in _SECONDS:
            limit, window = rl.limit, _SECONDS[rl.interval] * rl.intervalNum
    return ExchangeInfo({s.symbol: s.status for s in info.symbols}, limit, window)
