"""Clock calibration against the exchange: NTP-style offset from ``GET /api/v3/time``.

Why: exchange event times (``E``) are stamped by the exchange's clock, ours by the local
wall clock; a latency measured across two unsynchronised clocks is meaningless. Each
sync takes a few samples (local t0, ``serverTime``, local t1) and keeps the one with
the smallest round trip, because the smaller the round trip the less room there is for
an asymmetric path to bias ``serverTime − (t0 + t1) / 2``. Syncs repeat every
``connection.clock_sync_interval_s`` to follow drift. The estimation itself is pure
(:func:`best_sample`) so it is testable without sockets. ``serverTime`` and event times
are both whole (truncated) milliseconds, so their half-millisecond biases cancel in the
offset-corrected latency (engine.health).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from engine.binance.rest_rows import decode_server_time
from engine.clock import SYSTEM, Clock, ExchangeClock
from engine.errors import RestError
from engine.rest.client import Params, Priority
from engine.tasks import cancel_and_wait

log = logging.getLogger("binance_live.clock_sync")

SAMPLES_PER_SYNC = 5
RETRY_AFTER_FAILURE_S = 10.0  # a failed sync is retried sooner than the regular interval
TIME_PATH = "/api/v3/time"  # weight 1


T = TypeVar("T")


class _Fetcher(Protocol):
    async def fetch(self, path: str, params: Params | None, decode: Callable[[bytes], T],
                    priority: Priority = Priority.POLL) -> T: ...


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One exchange-time probe; local times are wall-clock epoch ms."""

    t0_ms: float
    server_ms: int
    t1_ms: float

    @property
    def rtt_ms(self) -> float:
        return self.t1_ms - self.t0_ms

    @property
    def offset_ms(self) -> float:
        """Exchange clock minus local clock, assuming a symmetric path."""
        return self.server_ms - (self.t0_ms + self.t1_ms) / 2


def best_sample(samples: Iterable[ClockSample]) -> ClockSample | None:
    """The sample with the smallest round trip (least room for path asymmetry); None if empty."""
    return min(samples, key=lambda s: s.rtt_ms, default=None)


@dataclass(frozen=True)
class ClockStatus:
    offset_ms: float | None  # exchange − local; None before the first successful sync
    rtt_ms: float | None  # round trip of the sample the offset came from
    last_sync_age_s: float  # -1 before the first successful sync
    syncs: int
    failures: int  # syncs that produced no sample
    last_error: str


class ClockSync:
    """Keeps ``exchange.offset_ms`` (exchange clock − local clock) fresh through a shared
    RestClient: every user of :class:`~engine.clock.ExchangeClock` sees the new offset."""

    def __init__(self, rest: _Fetcher, interval_s: float = 300.0,
                 samples: int = SAMPLES_PER_SYNC, clock: Clock = SYSTEM,
                 exchange: ExchangeClock | None = None) -> None:
        self.rest = rest
        self.interval_s = interval_s
        self.samples = samples
        self.clock = clock
        self.exchange = exchange or ExchangeClock(clock)
        self.best: ClockSample | None = None
        self.syncs = 0
        self.failures = 0
        self.last_error = ""
        self._synced_at = 0.0  # monotonic
        self._task: asyncio.Task[None] | None = None

    @property
    def offset_ms(self) -> float:
        """The current estimate; 0 until the first sync (local time taken as exchange time)."""
        return self.best.offset_ms if self.best is not None else 0.0

    @property
    def synced(self) -> bool:
        return self.best is not None

    async def sample(self) -> ClockSample:
        t0 = self.clock.time_ns()
        server_ms = await self.rest.fetch(TIME_PATH, None, decode_server_time,
                                          priority=Priority.BACKFILL)
        t1 = self.clock.time_ns()
        return ClockSample(t0 / 1e6, server_ms, t1 / 1e6)

    async def sync_once(self) -> ClockSample | None:
        """Take the samples, adopt the best; a sync with no usable sample counts as a failure."""
        got: list[ClockSample] = []
        for _ in range(self.samples):
            try:
                got.append(await self.sample())
            except RestError as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
        best = best_sample(got)
        if best is None:
            self.failures += 1
            log.warning("clock sync failed: %s", self.last_error)
            return None
        self.best = best
        self.exchange.offset_ms = best.offset_ms
        self.syncs += 1
        self._synced_at = self.clock.monotonic()
        return best

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="clock-sync")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            ok = await self.sync_once() is not None
            await asyncio.sleep(self.interval_s if ok
                                else min(self.interval_s, RETRY_AFTER_FAILURE_S))

    def status(self) -> ClockStatus:
        best = self.best
        return ClockStatus(
            offset_ms=best.offset_ms if best else None, rtt_ms=best.rtt_ms if best else None,
            last_sync_age_s=self.clock.monotonic() - self._synced_at if best else -1.0,
            syncs=self.syncs, failures=self.failures, last_error=self.last_error)
