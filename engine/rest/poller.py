"""Order-book snapshot polling over REST (the seed's ``--order-book-snapshot``).

Every subscribed symbol is polled every ``interval_s`` with ``/api/v3/depth?limit=N``;
each reply is published on the bus as an ``OrderBookSnapshot``. Failures are counted and
retried at the next tick; 429/418 pauses are enforced by the shared RestClient.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from engine.binance.rest_rows import decode_depth
from engine.bus import Bus
from engine.config import OrderBook
from engine.errors import RestError
from engine.rest.client import RestClient
from engine.tasks import TaskSet


class _Symbols(Protocol):
    @property
    def symbols(self) -> Sequence[str]: ...


class SnapshotPoller:
    def __init__(self, cfg: OrderBook, subscription: _Symbols, rest: RestClient,
                 bus: Bus) -> None:
        self.cfg = cfg
        self.subscription = subscription  # the symbols polled: whatever is subscribed now
        self.rest = rest
        self.bus = bus
        self.snapshots = 0
        self.errors = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None
        self._tasks = TaskSet("poller")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = self._tasks.spawn(self._run(), name="poller")

    def pause(self) -> None:
        """Stop polling now (the cancelled task is awaited by :meth:`stop`)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        self._task = None
        await self._tasks.close()

    async def poll_once(self, symbol: str) -> None:
        limit = self.cfg.limit
        try:
            snap = await self.rest.fetch(
                "/api/v3/depth", {"symbol": symbol, "limit": limit},
                lambda body: decode_depth(body, symbol, limit, time.time_ns()))
        except RestError as exc:
            self.errors += 1
            self.last_error = f"{symbol}: {exc}"
            return
        self.bus.publish(snap)
        self.snapshots += 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            for symbol in list(self.subscription.symbols):
                await self.poll_once(symbol)
            next_at += self.cfg.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time() - self.cfg.interval_s)
