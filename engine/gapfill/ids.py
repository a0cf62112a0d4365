"""Trade and aggTrade id gaps, fetched from REST and published in id order.

The id gate ledgers a ``gap`` when ids jump; this fetches the missing ids with
``/api/v3/historicalTrades`` (weight 25) or ``/api/v3/aggTrades`` (weight 4),
``fromId`` + ``limit=1000`` per page. Pages pass the receive path's id gate too, so an
id a live (redundant or late) frame delivered meanwhile is not published twice. Each
gap ends in one ledger entry: ``backfill`` ("N rows from /api/v3/aggTrades") or
``backfill_failed`` with the reason (ids older than the exchange keeps, a gap too
large, REST failing after the retries, the engine stopping).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.binance.streams import stream_name
from engine.bus import Bus
from engine.events import AggTrade, Ledger, LedgerEntry, Trade
from engine.feed.gate import IdGate
from engine.gapfill.fetch import BackfillStats, GiveUp, PageFetcher
from engine.gapfill.rows import (
    BACKFILL_CONN,
    agg_trades_from_rest,
    backfill_entry,
    event_id,
    gap_range,
    trades_from_rest,
)
from engine.tasks import TaskSet

PAGE = 1000  # rows per REST page (Binance's maximum)
MAX_GAP_IDS = 5_000_000  # a longer gap (days of downtime) is reported, not fetched
SEEN_KEEP = 5_000  # gaps remembered, so the same gap reported twice is fetched once
ENDPOINTS = {"trade": "/api/v3/historicalTrades", "aggTrade": "/api/v3/aggTrades"}
_RETRACTED = "retracted"

GapKey = tuple[str, str, int, int]  # (kind, symbol, first, last)
Convert = Callable[[bytes, str, int], list[Trade] | list[AggTrade]]


def _converter(kind: str) -> Convert:
    if kind == "trade":
        return trades_from_rest
    return agg_trades_from_rest


class IdGapFiller:
    def __init__(self, fetcher: PageFetcher, bus: Bus, gate: IdGate, stats: BackfillStats,
                 tasks: TaskSet, locks: dict[tuple[str, str], asyncio.Lock],
                 page: int = PAGE) -> None:
        self.fetcher = fetcher
        self.bus = bus
        self.gate = gate
        self.stats = stats
        self.tasks = tasks
        self.locks = locks  # one gap of a stream at a time: published in id order
        self.page = page  # rows per request (tests use small pages to force several)
        self._active: set[GapKey] = set()  # gaps being backfilled
        self._seen: set[GapKey] = set()  # gaps handed to us (bounded)
        self._seen_order: deque[GapKey] = deque()
        self._published: dict[tuple[str, str], int] = {}  # highest id backfilled
        self._retracted: set[GapKey] = set()  # active gaps that late ids filled

    # -- ledger entries (scheduled from an inline consumer) ---------------------------------

    def on_gap(self, entry: LedgerEntry, kind: str) -> None:
        key = (kind, entry.symbol, *gap_range(entry))
        if kind not in ENDPOINTS or not entry.symbol or key in self._seen:
            return
        self._seen.add(key)  # the same gap reported twice is fetched once
        self._seen_order.append(key)
        if len(self._seen_order) > SEEN_KEEP:
            self._seen.discard(self._seen_order.popleft())
        self.stats.gaps += 1
        self.tasks.spawn(self._fill_gap(kind, entry), name=f"backfill:{entry.stream}")

    def on_gap_filled(self, entry: LedgerEntry, kind: str) -> None:
        """Late ids (e.g. a redundant connection) got there first. Our own pages end a
        gap through the gate too (conn = BACKFILL_CONN): that is no retraction."""
        if entry.conn == BACKFILL_CONN:
            return
        key = (kind, entry.symbol, *gap_range(entry))
        if key in self._active:
            self._retracted.add(key)

    async def _rows(self, kind: str, symbol: str, next_id: int,
                    last: int) -> list[Trade] | list[AggTrade]:
        """One REST page of ``kind`` from ``next_id`` (at most up to ``last``)."""
        convert = _converter(kind)
        return await self.fetcher.get(
            ENDPOINTS[kind], {"symbol": symbol, "fromId": next_id,
                              "limit": min(self.page, last - next_id + 1)},
            lambda body: convert(body, symbol, time.time_ns()))

    # -- one gap ----------------------------------------------------------------------------

    async def _fill_gap(self, kind: str, gap: LedgerEntry) -> None:
        symbol, stream = gap.symbol, gap.stream
        first, last = gap_range(gap)
        path = ENDPOINTS[kind]
        if first < 0:
            return
        want = last - first + 1
        got = 0
        reason = ""
        lock = self.locks.setdefault((kind, symbol), asyncio.Lock())
        progress = [0]
        active = (kind, symbol, first, last)
        self._active.add(active)
        try:
            async with lock:
                if want > MAX_GAP_IDS:
                    raise GiveUp(f"gap of {want:,} ids is over the {MAX_GAP_IDS:,} backfill "
                                 "limit")
                got, reason = await self._fetch_ids(kind, symbol, first, last, progress)
        except GiveUp as exc:
            got, reason = progress[0], str(exc)
        except asyncio.CancelledError:  # engine stopping: the ledger still says so
            self.stats.failed += 1
            self.stats.rows += progress[0]
            self.bus.publish(backfill_entry(
                Ledger.BACKFILL_FAILED, stream, symbol, first, last, gap.last_good,
                gap.start_ns, f"{progress[0]} of {want} rows from {path}: stopped before the "
                              "backfill finished"))
            raise
        finally:
            self._active.discard(active)
            self._retracted.discard(active)
        self.stats.rows += got
        if reason == _RETRACTED:
            return  # the gate's gap_filled entry already retracts the gap
        if got == want and not reason:
            self.stats.filled += 1
            self.bus.publish(backfill_entry(Ledger.BACKFILL, stream, symbol, first, last,
                                            gap.last_good, gap.start_ns,
                                            f"{got} rows from {path}"))
        else:
            self.stats.failed += 1
            self.stats.last_error = reason
            self.bus.publish(backfill_entry(Ledger.BACKFILL_FAILED, stream, symbol, first,
                                            last, gap.last_good, gap.start_ns,
                                            f"{got} of {want} rows from {path}: {reason}"))

    async def _fetch_ids(self, kind: str, symbol: str, first: int, last: int,
                         progress: list[int]) -> tuple[int, str]:
        """Publish ids ``first..last``; returns (rows published, why some are missing).
        ``progress[0]`` follows the rows published so far."""
        path = ENDPOINTS[kind]
        # ids an earlier, overlapping gap already backfilled are not published twice
        next_id = max(first, self._published.get((kind, symbol), first - 1) + 1)
        got, empty, unavailable = min(next_id, last + 1) - first, 0, ""
        while next_id <= last:
            rows = await self._rows(kind, symbol, next_id, last)
            page = [e for e in rows if next_id <= event_id(e) <= last]
            if not page:
                if rows and event_id(rows[0]) > last:  # the exchange no longer has them
                    unavailable = f"ids {next_id}..{last} not available (REST starts at " \
                                  f"{event_id(rows[0])})"
                    break
                empty += 1  # REST not caught up with the stream yet: try again
                if empty >= self.fetcher.max_attempts:
                    return got, f"{path} returned no rows from id {next_id}"
                await asyncio.sleep(self.fetcher.backoff(attempt=empty).next_delay())
                continue
            if event_id(page[0]) > next_id and not unavailable:
                unavailable = f"ids {next_id}..{event_id(page[0]) - 1} not available (older " \
                              "than the exchange keeps)"
            if (kind, symbol, first, last) in self._retracted:
                return got, _RETRACTED
            passed: list[Any] = []
            self.gate.filter(page, passed)
            self.bus.publish_many(passed)
            got += len(page)
            progress[0] = got
            next_id = event_id(page[-1]) + 1
            if next_id - 1 > self._published.get((kind, symbol), -1):
                self._published[(kind, symbol)] = next_id - 1
        return got, unavailable

    # -- a consumer that missed ids (the recorder during a storage failure) ---------------

    def refill(self, kind: str, symbol: str, first: int, last: int,
               sink: Callable[[Any], None], why: str) -> None:
        """Fetch ids ``first..last`` again for one consumer only.

        After a storage failure the recorder dropped ids that every other consumer had
        live, so they go to ``sink`` (not the bus, not the gate); the ledger gets a
        ``backfill`` / ``backfill_failed`` entry naming ``why``.
        """
        self.tasks.spawn(self._refill(kind, symbol, first, last, sink, why),
                         name=f"refill:{kind}:{symbol}")

    async def _refill(self, kind: str, symbol: str, first: int, last: int,
                      sink: Callable[[Any], None], why: str) -> None:
        path = ENDPOINTS[kind]
        next_id, got, reason = first, 0, ""
        lock = self.locks.setdefault((kind, symbol), asyncio.Lock())
        try:
            async with lock:
                while next_id <= last:
                    rows = await self._rows(kind, symbol, next_id, last)
                    page = [e for e in rows if next_id <= event_id(e) <= last]
                    if not page:
                        reason = f"ids {next_id}..{last} not available"
                        break
                    for event in page:
                        sink(event)
                    got += len(page)
                    next_id = event_id(page[-1]) + 1
        except GiveUp as exc:
            reason = str(exc)
        self.stats.rows += got
        ok = got == last - first + 1 and not reason
        self.stats.filled += ok
        self.stats.failed += not ok
        self.bus.publish(backfill_entry(
            Ledger.BACKFILL if ok else Ledger.BACKFILL_FAILED, stream_name(kind, symbol),
            symbol, first, last, first - 1, 0,
            f"{got} rows from {path} ({why})" + (f": {reason}" if reason else "")))
