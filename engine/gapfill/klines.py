"""Klines missed during a disconnect, fetched from REST (closed bars only, never twice).

Klines have no ids. The open time of the last kline seen on each (symbol, interval) is
remembered; after a disconnect (``disconnect``/``stale``/``server_shutdown``) the next
``connect`` triggers ``/api/v3/klines`` (weight 2) from that open time for the bars that
closed before the reconnect, and the first live *closed* kline after it triggers a
second pass for the bars before that one (the bar open at the reconnect may never be
sent closed on the new socket). Bars already seen closed are skipped, so none is stored
twice; the rest are published with ``backfilled=True``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from engine.binance.streams import stream_name
from engine.bus import Bus
from engine.clock import ExchangeClock
from engine.events import Kline, Ledger, LedgerEntry
from engine.gapfill.fetch import BackfillStats, GiveUp, PageFetcher
from engine.gapfill.rows import backfill_entry, klines_from_rest
from engine.rest.client import Params
from engine.tasks import TaskSet

PAGE = 1000  # bars per REST page (Binance's maximum)
CLOSED_KEEP = 5_000  # closed kline open times remembered per (symbol, interval)
KLINES = "/api/v3/klines"

Key = tuple[str, str]  # (symbol, interval)


class KlineGapFiller:
    def __init__(self, fetcher: PageFetcher, bus: Bus, stats: BackfillStats, tasks: TaskSet,
                 locks: dict[tuple[str, str], asyncio.Lock], *,
                 kline_keys: Callable[[], Iterable[Key]], clock: ExchangeClock,
                 page: int = PAGE) -> None:
        self.fetcher = fetcher
        self.bus = bus
        self.stats = stats
        self.tasks = tasks
        self.locks = locks
        self.kline_keys = kline_keys  # (symbol, interval) of the klines subscribed now
        self.clock = clock  # bars close on the exchange's clock
        self.page = page
        self._last: dict[Key, int] = {}  # open time last seen live
        self._closed: dict[Key, tuple[set[int], deque[int]]] = {}
        self._pending: dict[Key, int] = {}  # disconnected: fetch since this open time
        self._armed: dict[Key, int] = {}  # reconnected, no live close yet

    # -- inline consumers (they only schedule) ---------------------------------------------

    def on_kline(self, ev: Kline) -> None:
        bar = ev.bar
        key = (ev.symbol, bar.interval)
        if not ev.backfilled and bar.open_time >= self._last.get(key, -1):
            self._last[key] = bar.open_time
        if bar.closed:
            self._note_closed(key, bar.open_time)
            if not ev.backfilled and key in self._armed:
                # The first live close after a reconnect: every bar before it is REST's job
                # (the new socket starts with the bar open at the reconnect, and may not
                # send that one closed).
                since = self._armed.pop(key)
                if bar.open_time > since:
                    self._spawn(key, since, until_open=bar.open_time)

    def on_disconnect(self, entry: LedgerEntry) -> None:
        names = set(filter(None, entry.stream.split(",")))
        for key, open_time in self._last.items():
            if not names or stream_name("kline", key[0], interval=key[1]) in names:
                self._pending.setdefault(key, open_time)

    def on_connect(self, entry: LedgerEntry) -> None:
        """Bars closed before the reconnect now; the bar open at the reconnect (and any
        bar the new socket does not send closed) when its first live close arrives."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        wanted = set(self.kline_keys())
        cutoff = self.clock.to_exchange_ms(entry.recv_ns)
        for key, since in pending.items():
            if key in wanted:
                self._armed[key] = since
                self._spawn(key, since, cutoff_ms=cutoff)

    def seed(self, last_closed: dict[Key, int]) -> None:
        """After a restart: backfill each (symbol, interval) from its last recorded closed
        bar at the first connect."""
        for key, open_time in last_closed.items():
            self._note_closed(key, open_time)
            self._pending.setdefault(key, open_time)

    def _note_closed(self, key: Key, open_time: int) -> None:
        seen = self._closed.get(key)
        if seen is None:
            seen = self._closed[key] = (set(), deque())
        if open_time in seen[0]:
            return
        seen[0].add(open_time)
        seen[1].append(open_time)
        if len(seen[1]) > CLOSED_KEEP:
            seen[0].discard(seen[1].popleft())

    def _spawn(self, key: Key, since: int, *, cutoff_ms: int = 0, until_open: int = 0) -> None:
        self.tasks.spawn(self._fill(key, since, cutoff_ms=cutoff_ms, until_open=until_open),
                         name=f"backfill:klines:{key[0]}:{key[1]}")

    # -- fetching --------------------------------------------------------------------------

    async def _fill(self, key: Key, since: int, *, cutoff_ms: int = 0,
                    until_open: int = 0) -> None:
        """Publish the closed bars ``since`` <= open time (< ``until_open``) that closed
        before ``cutoff_ms`` (exchange time; 0: now) and were not seen closed yet."""
        lock = self.locks.setdefault(("kline", f"{key[0]}:{key[1]}"), asyncio.Lock())
        async with lock:  # the two passes after a reconnect never publish a bar twice
            await self._fill_locked(key, since, cutoff_ms, until_open)

    async def _fill_locked(self, key: Key, since: int, cutoff_ms: int, until_open: int) -> None:
        symbol, interval = key
        stream = stream_name("kline", symbol, interval=interval)
        published: list[int] = []
        reason = ""
        start = since
        try:
            cutoff = cutoff_ms or self.clock.now_ms()
            while True:
                params: Params = {"symbol": symbol, "interval": interval,
                                  "startTime": start, "limit": self.page}
                if until_open:
                    params["endTime"] = until_open - 1
                rows = await self.fetcher.get(
                    KLINES, params,
                    lambda body: klines_from_rest(body, symbol, interval, time.time_ns(),
                                                  cutoff))
                closed = self._closed.get(key, (set(), deque()))[0]
                page = [k for k in rows if k.bar.closed and k.bar.open_time >= since
                        and k.bar.open_time not in closed
                        and (not until_open or k.bar.open_time < until_open)]
                if page:
                    self.bus.publish_many(page)
                    for k in page:
                        self._note_closed(key, k.bar.open_time)
                    published += [k.bar.open_time for k in page]
                if len(rows) < self.page or not rows[-1].bar.closed:
                    break
                start = rows[-1].bar.open_time + 1
        except GiveUp as exc:
            reason = str(exc)
        self.stats.klines += len(published)
        first, last = (published[0], published[-1]) if published else (since, -1)
        if reason:
            self.stats.failed += 1
            self.stats.last_error = reason
            self.bus.publish(backfill_entry(
                Ledger.BACKFILL_FAILED, stream, symbol, first, last, since, 0,
                f"{len(published)} closed klines from {KLINES}, then: {reason}"))
        elif published:
            self.bus.publish(backfill_entry(
                Ledger.BACKFILL, stream, symbol, first, last, since, 0,
                f"{len(published)} rows from {KLINES} (closed klines; first/last_missing "
                "are open times, ms)"))
