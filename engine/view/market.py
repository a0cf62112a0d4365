"""Plain in-memory market state that UIs *pull* on their own timer.

An ``inline`` bus consumer (:meth:`MarketState.on_event`) keeps, per symbol, what the
trading panels draw: recent trades, the latest book ticker (and the one before it),
candles per kline interval, the latest partial depth and mini ticker. The per-message
work is a dict lookup and an append; every panel has its own change counter (``*_seq``)
so a widget repaints only when its counter moved. No Textual, no Rich: the headless
runner and scripts can read the same state.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import msgspec

from engine.events import (
    AggTrade,
    BookTicker,
    Event,
    Kline,
    MiniTicker,
    PartialDepth,
    RestKline,
    Trade,
)
from engine.rest.client import Priority

if TYPE_CHECKING:
    from engine.rest.client import RestClient

TRADES_MAXLEN = 1000
CANDLES_MAXLEN = 500
MEDIAN_WINDOW = 500  # trades the rolling median notional is taken over
MEDIAN_MIN_SAMPLES = 20  # the multiple rule is off until this many trades were seen
MEDIAN_EVERY = 256  # recompute the median every N trades (sorting per trade is wasteful)


class TapeTrade(NamedTuple):
    """One row of the trade tape; ``large`` is decided when the trade arrives."""

    time_ms: int
    price: float
    qty: float
    notional: float
    buyer_is_maker: bool  # True: the seller hit the bid (sell aggressor)
    large: bool
    trade_id: int


_new_tape_trade = tuple.__new__


class Candle(msgspec.Struct, gc=False):
    """One OHLCV bar. Never mutated once stored (a live update stores a new one), so a
    UI snapshot of the bars stays as it was."""

    open_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class CandleSeries:
    """Bars of one (symbol, interval), keyed by open time, oldest first, bounded."""

    def __init__(self, maxlen: int = CANDLES_MAXLEN) -> None:
        self.maxlen = maxlen
        self.bars: dict[int, Candle] = {}
        self._last_open = -1

    def __len__(self) -> int:
        return len(self.bars)

    def upsert(self, bar: Candle) -> None:
        """Insert or replace a bar; an out-of-order one (rare) re-sorts the series."""
        bars = self.bars
        bars[bar.open_time] = bar
        if bar.open_time > self._last_open:
            self._last_open = bar.open_time
        elif len(bars) > 1 and next(reversed(bars)) != self._last_open:
            self._resort()
        while len(bars) > self.maxlen:
            del bars[next(iter(bars))]

    def merge_history(self, history: list[Candle]) -> int:
        """Add REST history: bars already received live win, except that a closed REST
        bar replaces a live bar still marked open. Returns the bars added or replaced."""
        bars = self.bars
        changed = 0
        for bar in history:
            have = bars.get(bar.open_time)
            if have is None or (bar.closed and not have.closed):
                bars[bar.open_time] = bar
                changed += 1
        self._resort()
        while len(bars) > self.maxlen:
            del bars[next(iter(bars))]
        return changed

    def _resort(self) -> None:
        self.bars = dict(sorted(self.bars.items()))
        self._last_open = next(reversed(self.bars)) if self.bars else -1

    def last(self, n: int | None = None) -> list[Candle]:
        """The newest ``n`` bars (all when None), oldest first."""
        values = list(self.bars.values())
        return values if n is None or n >= len(values) else values[len(values) - n:]


@dataclass(eq=False)
class SymbolState:
    """Everything the panels of one symbol draw, with one change counter per panel."""

    symbol: str
    trades: deque[TapeTrade] = field(default_factory=lambda: deque(maxlen=TRADES_MAXLEN))
    book_ticker: BookTicker | None = None
    prev_book_ticker: BookTicker | None = None  # the one before ``book_ticker``
    bid_move: int = 0  # sign of the last bid *price* change (+1 up, -1 down), sticky
    ask_move: int = 0
    candles: dict[str, CandleSeries] = field(default_factory=dict)  # interval -> bars
    depth: PartialDepth | None = None
    mini_ticker: MiniTicker | None = None
    trades_seq: int = 0
    ticker_seq: int = 0  # book ticker
    candles_seq: int = 0
    depth_seq: int = 0
    mini_seq: int = 0
    median_notional: float = 0.0  # rolling median of recent trade notionals; 0 = not yet
    trade_seen: bool = False  # a raw trade arrived since the trade source last changed
    _notionals: deque[float] = field(default_factory=lambda: deque(maxlen=MEDIAN_WINDOW))
    _since_median: int = 0

    def series(self, interval: str) -> CandleSeries | None:
        return self.candles.get(interval)


class MarketState:
    """Per-symbol market state fed by the bus, read by UIs on a timer.

    ``large_notional`` (> 0) marks a trade large at that absolute notional;
    ``large_multiple`` (> 0) marks it large at that multiple of the rolling median
    notional. Either rule is off at 0. ``interval`` is the kline interval the UI shows
    (the engine keeps it current when the interval is switched).
    """

    KINDS: ClassVar[tuple[type[Event], ...]] = (
        Trade, AggTrade, Kline, BookTicker, PartialDepth, MiniTicker)

    def __init__(self, symbols: tuple[str, ...] | list[str] = (), *, interval: str = "1m",
                 large_notional: float = 0.0, large_multiple: float = 10.0,
                 trades_maxlen: int = TRADES_MAXLEN, candles_maxlen: int = CANDLES_MAXLEN,
                 prefer_trade: bool = True) -> None:
        self.interval = interval
        self.large_notional = large_notional
        self.large_multiple = large_multiple
        self.trades_maxlen = trades_maxlen
        self.candles_maxlen = candles_maxlen
        self.prefer_trade = prefer_trade
        self.symbols: dict[str, SymbolState] = {}
        for sym in symbols:
            self.symbol(sym)
        self._handlers = {Trade: self._on_trade, AggTrade: self._on_agg_trade,
                          Kline: self._on_kline, BookTicker: self._on_book_ticker,
                          PartialDepth: self._on_depth, MiniTicker: self._on_mini}

    # -- access ---------------------------------------------------------------------------

    def symbol(self, symbol: str) -> SymbolState:
        """The state of ``symbol``, created empty on first use."""
        st = self.symbols.get(symbol)
        if st is None:
            st = self.symbols[symbol] = SymbolState(
                symbol, trades=deque(maxlen=self.trades_maxlen))
        return st

    def get(self, symbol: str) -> SymbolState | None:
        return self.symbols.get(symbol)

    def candles(self, symbol: str, interval: str | None = None) -> list[Candle]:
        """Bars of ``symbol`` at ``interval`` (default: the current one), oldest first."""
        st = self.symbols.get(symbol)
        series = st.candles.get(interval or self.interval) if st is not None else None
        return series.last() if series is not None else []

    def book_ticker(self, symbol: str) -> BookTicker | None:
        """The latest bookTicker of ``symbol`` (None before the first)."""
        st = self.symbols.get(symbol)
        return st.book_ticker if st is not None else None

    def partial_depth(self, symbol: str) -> PartialDepth | None:
        """The latest partial-depth snapshot of ``symbol`` (None before the first)."""
        st = self.symbols.get(symbol)
        return st.depth if st is not None else None

    def mini_ticker(self, symbol: str) -> MiniTicker | None:
        st = self.symbols.get(symbol)
        return st.mini_ticker if st is not None else None

    def recent_trades(self, symbol: str, n: int) -> list[TapeTrade]:
        """The newest ``n`` trades, newest first."""
        st = self.symbols.get(symbol)
        if st is None:
            return []
        trades = st.trades
        return [trades[-1 - i] for i in range(min(n, len(trades)))]

    # -- control (engine side) ------------------------------------------------------------

    def use_trade_stream(self, on: bool) -> None:
        """Take the tape from raw trades (``on``) or from aggTrades (trade stream off).

        While raw trades are preferred but none has arrived yet (just re-enabled, or a
        recording without them), aggTrades keep feeding the tape so it never goes blank.
        """
        if on != self.prefer_trade:
            self.prefer_trade = on
            for st in self.symbols.values():
                st.trade_seen = False

    def set_interval(self, interval: str) -> None:
        """Show ``interval``; its bars start empty (history comes from the backfill)."""
        self.interval = interval
        for st in self.symbols.values():
            st.candles.pop(interval, None)
            st.candles_seq += 1

    def drop_interval(self, interval: str) -> None:
        """Forget the bars of an interval no longer shown (they would only go stale)."""
        for st in self.symbols.values():
            st.candles.pop(interval, None)

    def load_candles(self, symbol: str, interval: str, history: list[Candle]) -> int:
        """Merge REST history into the bars; returns how many were added or replaced."""
        st = self.symbol(symbol)
        series = st.candles.get(interval)
        if series is None:
            series = st.candles[interval] = CandleSeries(self.candles_maxlen)
        changed = series.merge_history(history)
        st.candles_seq += 1
        return changed

    # -- bus consumer (hot path) ----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)  # type: ignore[operator]

    def _on_trade(self, ev: Trade) -> None:
        if not self.prefer_trade or ev.backfilled:  # the tape shows the live feed only
            return
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        st.trade_seen = True
        self._add_trade(st, ev.trade_time, ev.price, ev.qty, ev.buyer_is_maker, ev.trade_id)

    def _on_agg_trade(self, ev: AggTrade) -> None:
        if ev.backfilled:
            return
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        if self.prefer_trade and st.trade_seen:
            return
        self._add_trade(st, ev.trade_time, ev.price, ev.qty, ev.buyer_is_maker, ev.agg_id)

    def _add_trade(self, st: SymbolState, time_ms: int, price: float, qty: float,
                   buyer_is_maker: bool, trade_id: int) -> None:
        notional = price * qty
        # tuple.__new__: a NamedTuple's own __new__ is a Python function (~0.3 µs a trade)
        st.trades.append(_new_tape_trade(TapeTrade, (
            time_ms, price, qty, notional, buyer_is_maker,
            self.is_large(notional, st.median_notional), trade_id)))
        st.trades_seq += 1
        st._notionals.append(notional)
        st._since_median += 1
        if st._since_median >= MEDIAN_EVERY or (
                not st.median_notional and len(st._notionals) >= MEDIAN_MIN_SAMPLES):
            st.median_notional = median(st._notionals)
            st._since_median = 0

    def is_large(self, notional: float, median_notional: float) -> bool:
        """The large-trade rule: over the absolute threshold, or a multiple of the median."""
        if self.large_notional > 0 and notional >= self.large_notional:
            return True
        return (self.large_multiple > 0 and median_notional > 0
                and notional >= self.large_multiple * median_notional)

    def _on_kline(self, ev: Kline) -> None:
        b = ev.bar
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        series = st.candles.get(b.interval)
        if series is None:
            series = st.candles[b.interval] = CandleSeries(self.candles_maxlen)
        series.upsert(Candle(b.open_time, b.open, b.high, b.low, b.close, b.volume, b.closed))
        st.candles_seq += 1

    def _on_book_ticker(self, ev: BookTicker) -> None:
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        prev = st.book_ticker
        if prev is not None:
            if ev.bid_price != prev.bid_price:
                st.bid_move = 1 if ev.bid_price > prev.bid_price else -1
            if ev.ask_price != prev.ask_price:
                st.ask_move = 1 if ev.ask_price > prev.ask_price else -1
        st.prev_book_ticker = prev
        st.book_ticker = ev
        st.ticker_seq += 1

    def _on_depth(self, ev: PartialDepth) -> None:
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        st.depth = ev
        st.depth_seq += 1

    def _on_mini(self, ev: MiniTicker) -> None:
        st = self.symbols.get(ev.symbol) or self.symbol(ev.symbol)
        st.mini_ticker = ev
        st.mini_seq += 1


def median(values: deque[float] | list[float]) -> float:
    """Median of a non-empty sequence (0.0 when empty)."""
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return 0.0
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


# -- REST history ------------------------------------------------------------------------



_klines_decoder = msgspec.json.Decoder(list[RestKline], strict=False)


def parse_klines(body: bytes, now_ms: int) -> list[Candle]:
    """Bars from a REST klines reply; a bar whose close time is not past is still live."""
    return [Candle(r.open_time, r.open, r.high, r.low, r.close, r.volume, r.close_time < now_ms)
            for r in _klines_decoder.decode(body)]


async def fetch_klines(rest: RestClient, symbol: str, interval: str, limit: int,
                       now_ms: int) -> list[Candle]:
    """The last ``limit`` bars of ``symbol`` at backfill priority (never before a resync)."""
    body = await rest.get("/api/v3/klines", {"symbol": symbol, "interval": interval,
                                             "limit": limit}, priority=Priority.BACKFILL)
    return parse_klines(body, now_ms)
