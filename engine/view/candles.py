"""Candles of the chart: one OHLCV bar per open time, bounded, oldest first."""

from __future__ import annotations

import msgspec

CANDLES_MAXLEN = 500


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
