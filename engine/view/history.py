"""Candle *history*: the chart's past bars from REST, so it is full at once.

Not to be confused with gap *backfill* (``engine.gapfill``), which refetches what the
feed missed for the recording. History only feeds the chart: on start, after an
interval switch, and for a symbol added at runtime, the last ``limit`` bars of every
subscribed symbol are fetched at BACKFILL priority (never before a book resync) and
merged into :class:`~engine.view.market.MarketState`. A REST failure is kept in
``error``; the live klines still fill the chart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from engine.binance.rest_rows import RestKline, decode_klines
from engine.clock import ExchangeClock
from engine.errors import RestError
from engine.rest.client import Priority, RestClient
from engine.subscription import Subscription
from engine.view.candles import Candle
from engine.view.market import MarketState

LIMIT = 200  # bars per symbol
KLINES = "/api/v3/klines"


def candles_from_rest(rows: list[RestKline], now_ms: int) -> list[Candle]:
    """REST klines as bars; a bar whose close time is not past (exchange time) is live."""
    return [Candle(r.open_time, r.open, r.high, r.low, r.close, r.volume, r.close_time < now_ms)
            for r in rows]


class CandleHistory:
    def __init__(self, rest: RestClient, market: MarketState, subscription: Subscription,
                 clock: ExchangeClock) -> None:
        self.rest = rest
        self.market = market
        self.subscription = subscription
        self.clock = clock
        self.error = ""

    async def fetch(self, symbol: str, interval: str, limit: int = LIMIT) -> list[Candle]:
        rows = await self.rest.fetch(KLINES, {"symbol": symbol, "interval": interval,
                                              "limit": limit}, decode_klines,
                                     priority=Priority.BACKFILL)
        return candles_from_rest(rows, self.clock.now_ms())

    async def load(self, interval: str, limit: int = LIMIT,
                   symbols: Iterable[str] | None = None) -> int:
        """The last ``limit`` bars of ``symbols`` (default: every subscribed one), fetched
        concurrently; returns the bars added. Errors are noted in ``error``, not raised."""
        syms = list(self.subscription.symbols if symbols is None else symbols)
        results = await asyncio.gather(*(self.fetch(s, interval, limit) for s in syms),
                                       return_exceptions=True)
        loaded = 0
        errors = []
        for sym, result in zip(syms, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, RestError):
                    raise result  # cancelled, or a bug
                errors.append(f"{sym}: {result}")
            elif interval == self.subscription.interval:  # not switched away meanwhile
                loaded += self.market.load_candles(sym, interval, result)
        self.error = "; ".join(errors)
        return loaded
