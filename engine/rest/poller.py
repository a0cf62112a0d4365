"""Order-book snapshot polling over REST (the seed's ``--order-book-snapshot``).

Each symbol is polled every ``interval_s`` with ``/api/v3/depth?limit=N``; each reply is
published on the bus as an ``OrderBookSnapshot``. Failures are counted and retried at
the next tick; 429/418 pauses are enforced by the shared RestClient.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec

from engine.bus import Bus
from engine.config.settings import OrderBook
from engine.feed.decode import decode_snapshot
from engine.rest.client import RestClient, RestError
from engine.tasks import cancel_and_wait


class SnapshotPoller:
    def __init__(self, cfg: OrderBook, symbols: tuple[str, ...], rest: RestClient,
                 bus: Bus) -> None:
        self.cfg = cfg
        self.symbols = symbols
        self.rest = rest
        self.bus = bus
        self.snapshots = 0
        self.errors = 0
        self.last_error = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="poller")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def poll_once(self, symbol: str) -> None:
        try:
            body = await self.rest.get("/api/v3/depth",
                                       {"symbol": symbol, "limit": self.cfg.limit})
            self.bus.publish(decode_snapshot(body, symbol, self.cfg.limit, time.time_ns()))
            self.snapshots += 1
        except (RestError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError,
                msgspec.ValidationError) as exc:
            self.errors += 1
            self.last_error = f"{symbol}: {exc}"[:200]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            for symbol in self.symbols:
                await self.poll_once(symbol)
            next_at += self.cfg.interval_s
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = max(next_at, loop.time() - self.cfg.interval_s)
