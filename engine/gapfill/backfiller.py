"""Gap backfill from REST: the trades, aggregate trades and klines a disconnect cost us.

One inline bus consumer reads the ledger (``gap``, ``gap_filled``, disconnects and
connects) and live klines, and only *schedules* work; the fetching runs in owned tasks
through the one shared REST client and weight budget at BACKFILL priority (after book
resyncs, before polling; 429/418 pause every caller), with the one retry policy.

* trade / aggTrade id gaps: :mod:`engine.gapfill.ids`;
* klines missed across a reconnect: :mod:`engine.gapfill.klines`;
* after a restart, the gate is seeded from the recording's tail: :mod:`engine.gapfill.seed`.

Depth diffs cannot be backfilled (Binance has no history of them; the book resyncs from
a snapshot instead) and bookTicker/partial depth/miniTicker have no REST history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from engine.binance.streams import parse_stream_name
from engine.bus import Bus, Mode
from engine.clock import ExchangeClock
from engine.events import LEDGER_DISCONNECTS, Kline, Ledger, LedgerEntry
from engine.feed.gate import IdGate
from engine.gapfill.fetch import MAX_ATTEMPTS, BackfillStats, PageFetcher
from engine.gapfill.ids import PAGE, IdGapFiller
from engine.gapfill.klines import KlineGapFiller
from engine.rest.client import RestClient
from engine.tasks import TaskSet

__all__ = ["BackfillStats", "Backfiller"]


class Backfiller:
    """Fills trade/aggTrade id gaps and missed klines from REST (see the module doc)."""

    def __init__(self, rest: RestClient, bus: Bus, gate: IdGate, *,
                 kline_keys: Callable[[], Iterable[tuple[str, str]]],
                 clock: ExchangeClock,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 max_attempts: int = MAX_ATTEMPTS, page: int = PAGE) -> None:
        self.bus = bus
        self.stats = BackfillStats()
        self._tasks = TaskSet("backfill")
        locks: dict[tuple[str, str], asyncio.Lock] = {}
        fetcher = PageFetcher(rest, self.stats, backoff_initial_s=backoff_initial_s,
                              backoff_max_s=backoff_max_s, max_attempts=max_attempts)
        self.ids = IdGapFiller(fetcher, bus, gate, self.stats, self._tasks, locks, page)
        self.klines = KlineGapFiller(fetcher, bus, self.stats, self._tasks, locks,
                                     kline_keys=kline_keys, clock=clock, page=page)

    @property
    def page(self) -> int:
        return self.ids.page

    @page.setter
    def page(self, rows: int) -> None:
        """Rows per REST request (tests use small pages to force several)."""
        self.ids.page = self.klines.page = rows

    def attach(self) -> None:
        self.bus.subscribe(self.on_ledger, kinds=(LedgerEntry,), name="backfill",
                           mode=Mode.INLINE)
        self.bus.subscribe(self.klines.on_kline, kinds=(Kline,), name="backfill-klines",
                           mode=Mode.INLINE)

    def on_ledger(self, entry: LedgerEntry) -> None:
        what = entry.what
        if what == Ledger.GAP or what == Ledger.GAP_FILLED:
            ref = parse_stream_name(entry.stream)
            kind = ref.kind if ref is not None else ""
            if what == Ledger.GAP:
                self.ids.on_gap(entry, kind)
            else:
                self.ids.on_gap_filled(entry, kind)
        elif what in LEDGER_DISCONNECTS:
            self.klines.on_disconnect(entry)
        elif what == Ledger.CONNECT:
            self.klines.on_connect(entry)

    def refill(self, kind: str, symbol: str, first: int, last: int,
               sink: Callable[[Any], None], why: str) -> None:
        """Fetch ids again for one consumer only (see ``IdGapFiller.refill``)."""
        self.ids.refill(kind, symbol, first, last, sink, why)

    def seed_klines(self, last_closed: dict[tuple[str, str], int]) -> None:
        self.klines.seed(last_closed)

    async def stop(self) -> None:
        """Cancel what is in flight (unfinished gaps get a ``backfill_failed`` entry)."""
        await self._tasks.close()
