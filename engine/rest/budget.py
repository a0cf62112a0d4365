"""The one REST weight budget: every call waits for weight instead of risking a ban.

Binance counts request weight per IP in fixed windows (6000 per wall-clock minute) and
answers an over-budget request with 429, then bans with 418. Here each request first
acquires its weight; when the window is spent, callers wait for the next window in
priority order (book resync before backfill before periodic polling). The server's own
count (``X-MBX-USED-WEIGHT-1M``) is authoritative: it also sees other processes on the
same IP. A 429 or 418 blocks every caller until its ``Retry-After`` has passed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass

from engine.binance.weights import DEFAULT_WEIGHT_LIMIT, DEFAULT_WINDOW_S
from engine.clock import ExchangeClock

SAFETY = 0.98  # stay a little under the limit: our window edges are estimates


@dataclass(frozen=True)
class BudgetStatus:
    limit: int
    window_s: float
    used: int  # in the current window, as far as we know
    waiting: int  # calls queued for weight
    blocked_for_s: float  # a 429/418 pause still running
    banned: bool  # the pause came from a 418 (IP ban)
    block_reason: str
    spent_total: int
    rate_limited: int  # 429s seen
    bans: int  # 418s seen


class WeightBudget:
    def __init__(self, limit: int = DEFAULT_WEIGHT_LIMIT, window_s: float = DEFAULT_WINDOW_S,
                 clock: ExchangeClock | None = None) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock or ExchangeClock()  # windows are on the exchange's minute edges
        self.used = 0
        self.spent_total = 0
        self.rate_limited = 0
        self.bans = 0
        self._window = self._window_now()
        self._blocked_until = 0.0  # monotonic
        # read only while a pause runs, and the first block() sets them both
        self._banned = False  # pragma: no mutate (equivalent: see above)
        self._reason = ""  # pragma: no mutate (equivalent: see above)
        self._heap: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def configure(self, limit: int, window_s: float) -> None:
        """Adopt the limits exchangeInfo announces."""
        self.limit, self.window_s = limit, window_s
        self._window = self._window_now()

    # -- accounting -----------------------------------------------------------------------

    def _server_time(self) -> float:
        return self.clock.now_s()

    def _window_now(self) -> int:
        # `/` would differ only by float rounding at an edge of a fractional-second window
        return int(self._server_time() // self.window_s)  # pragma: no mutate (equivalent)

    def _roll(self) -> None:
        window = self._window_now()
        if window != self._window:
            self._window = window
            self.used = 0

    def _seconds_to_next_window(self) -> float:
        return (self._window + 1) * self.window_s - self._server_time() + 0.05

    def note_server_used(self, used: int) -> None:
        """The server's count for this window (response header) wins if it is higher."""
        self._roll()
        if used > self.used:  # pragma: no mutate (equivalent: >= stores the same value)
            self.used = used

    def refund(self, weight: int) -> None:
        self.used = max(0, self.used - weight)
        self.spent_total -= weight

    def block(self, seconds: float, banned: bool, reason: str) -> None:
        until = time.monotonic() + seconds
        if until > self._blocked_until:
            self._blocked_until = until
            self._banned = banned
            self._reason = reason
        if banned:
            self.bans += 1
        else:
            self.rate_limited += 1
        self._schedule(seconds)

    # -- acquiring ------------------------------------------------------------------------

    async def acquire(self, weight: int, priority: int = 2) -> None:
        """Wait until ``weight`` fits in the window; higher priority (lower number) first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._heap, (priority, next(self._seq), weight, future))
        self._pump()
        try:
            await future
        except asyncio.CancelledError:
            future.cancel()  # a no-op when done: cancelled with the task, or granted just now
            raise

    def _pump(self) -> None:
        self._roll()
        now = time.monotonic()
        if now < self._blocked_until:
            self._schedule(self._blocked_until - now)
            return
        budget = int(self.limit * SAFETY)
        while self._heap:
            _, _, weight, future = self._heap[0]
            if future.done():  # cancelled waiter
                heapq.heappop(self._heap)
                continue
            if self.used + weight > budget and self.used > 0:
                self._schedule(self._seconds_to_next_window())
                return  # the head waits; nobody overtakes it
            heapq.heappop(self._heap)
            self.used += weight
            self.spent_total += weight
            future.set_result(None)

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, delay), self._pump)

    def close(self) -> None:
        """No more calls: the pending wake-up timer is cancelled."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def status(self) -> BudgetStatus:
        self._roll()
        blocked = max(0.0, self._blocked_until - time.monotonic())
        return BudgetStatus(
            limit=self.limit, window_s=self.window_s, used=self.used,
            waiting=sum(1 for *_, f in self._heap if not f.done()), blocked_for_s=blocked,
            banned=self._banned and blocked > 0, block_reason=self._reason if blocked else "",
            spent_total=self.spent_total, rate_limited=self.rate_limited, bans=self.bans)
