"""Plain in-memory market state that UIs *pull* on their own timer.

An ``inline`` bus consumer (:meth:`MarketState.on_event`) keeps, per symbol, what the
trading panels draw: recent trades, the latest book ticker (and the one before it),
candles per kline interval, the latest partial depth and mini ticker. The per-message
work is a dict lookup and an append; every panel has its own change counter (``*_seq``)
so a widget repaints only when its counter moved. No Textual, no Rich: the headless
runner and scripts can read the same state.

What a UI decides (which trade is "large", how many levels to show) is not decided
here: each tape row carries the rolling median notional at its arrival, so a UI's rule
is applied exactly as if it had been applied then.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

from engine.bus import Bus, Mode
from engine.events import (
    AggTrade,
    BookTicker,
    Event,
    Kline,
    MiniTicker,
    PartialDepth,
    Trade,
)
from engine.subscription import Change, Subscription
from engine.view.candles import CANDLES_MAXLEN, Candle, CandleSeries

TRADES_MAXLEN = 1000
MEDIAN_WINDOW = 500  # trades the rolling median notional is taken over
MEDIAN_MIN_SAMPLES = 20  # no median (0) until this many trades were seen
MEDIAN_EVERY = 256  # recompute the median every N trades (sorting per trade is wasteful)


class TapeTrade(NamedTuple):
    """One row of the trade tape."""

    time_ms: int
    price: float
    qty: float
    notional: float
    buyer_is_maker: bool  # True: the seller hit the bid (sell aggressor)
    median_notional: float  # the rolling median when it arrived (0: not known yet)
    trade_id: int


_new_tape_trade = tuple.__new__


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
    notionals: deque[float] = field(default_factory=lambda: deque(maxlen=MEDIAN_WINDOW))
    since_median: int = 0

    def series(self, interval: str) -> CandleSeries | None:
        return self.candles.get(interval)


class MarketState:
    """Per-symbol market state fed by the bus, read by UIs on a timer.

    The symbols, the kline interval shown and whether raw trades feed the tape come from
    the one :class:`~engine.subscription.Subscription`.
    """

    KINDS: ClassVar[tuple[type[Event], ...]] = (
        Trade, AggTrade, Kline, BookTicker, PartialDepth, MiniTicker)

    def __init__(self, subscription: Subscription, *, trades_maxlen: int = TRADES_MAXLEN,
                 candles_maxlen: int = CANDLES_MAXLEN) -> None:
        self.subscription = subscription
        self.trades_maxlen = trades_maxlen
        self.candles_maxlen = candles_maxlen
        self.prefer_trade = subscription.on("trade")  # kept in step by on_change
        self.symbols: dict[str, SymbolState] = {}
        for sym in subscription.symbols:
            self.symbol(sym)
        self._handlers = {Trade: self._on_trade, AggTrade: self._on_agg_trade,
                          Kline: self._on_kline, BookTicker: self._on_book_ticker,
                          PartialDepth: self._on_depth, MiniTicker: self._on_mini}
        subscription.listen(self.on_change)

    def attach(self, bus: Bus) -> None:
        bus.subscribe(self.on_event, kinds=self.KINDS, name="market", mode=Mode.INLINE)

    @property
    def interval(self) -> str:
        """The kline interval the chart shows (the subscription's)."""
        return self.subscription.interval

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

    # -- subscription changes -------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        if change.symbol:
            self.symbol(change.symbol)
        if change.kind == "trade":
            self.use_trade_stream(self.subscription.on("trade"))
        if change.interval:
            self._show_interval(change.interval, change.old_interval)

    def use_trade_stream(self, on: bool) -> None:
        """Take the tape from raw trades (``on``) or from aggTrades (trade stream off).

        While raw trades are preferred but none has arrived yet (just re-enabled, or a
        recording without them), aggTrades keep feeding the tape so it never goes blank.
        """
        if on != self.prefer_trade:
            self.prefer_trade = on
            for st in self.symbols.values():
                st.trade_seen = False

    def _show_interval(self, interval: str, old: str) -> None:
        """The chart moves to ``interval``: its bars start empty (history comes from REST),
        and the bars of ``old`` are forgotten (they would only go stale)."""
        for st in self.symbols.values():
            st.candles.pop(interval, None)
            st.candles.pop(old, None)
            st.candles_seq += 1

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
            handler(event)  # type: ignore[operator]  # the handler takes exactly this type

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
            time_ms, price, qty, notional, buyer_is_maker, st.median_notional, trade_id)))
        st.trades_seq += 1
        st.notionals.append(notional)
        st.since_median += 1
        if st.since_median >= MEDIAN_EVERY or (
                not st.median_notional and len(st.notionals) >= MEDIAN_MIN_SAMPLES):
            st.median_notional = median(st.notionals)
            st.since_median = 0

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


__all__ = ["Candle", "CandleSeries", "MarketState", "SymbolState", "TapeTrade", "median"]
