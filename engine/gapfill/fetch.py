"""One REST page for the backfill, with the one retry policy and a reason when it gives up.

429/418 already pause every caller in the shared budget for their Retry-After; the
jittered delay (:class:`~engine.retry.Backoff`) only spreads the retries out. A failure
that retrying cannot fix (a 4xx, a body that does not decode) gives up at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from engine.errors import RestError
from engine.rest.client import Params, Priority, RestClient
from engine.retry import Backoff

T = TypeVar("T")
MAX_ATTEMPTS = 8  # tries per page (429/418/5xx/network/empty reply) before giving up


class GiveUp(Exception):
    """A page could not be fetched: the reason goes to the ledger."""


@dataclass
class BackfillStats:
    gaps: int = 0  # trade/aggTrade gaps handed to us
    filled: int = 0  # gaps filled completely
    failed: int = 0  # gaps (or kline ranges) not (fully) filled
    rows: int = 0  # trades + aggTrades published
    klines: int = 0  # closed klines published
    retries: int = 0
    last_error: str = ""


class PageFetcher:
    def __init__(self, rest: RestClient, stats: BackfillStats, *, backoff_initial_s: float,
                 backoff_max_s: float, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.rest = rest
        self.stats = stats
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts

    def backoff(self, attempt: int = 0) -> Backoff:
        return Backoff(self.backoff_initial_s, self.backoff_max_s, attempt=attempt)

    async def get(self, path: str, params: Params, decode: Callable[[bytes], T]) -> T:
        """One page, decoded; raises GiveUp (never RestError) when it cannot be had."""
        backoff = self.backoff()
        attempt = 0
        while True:
            try:
                return await self.rest.fetch(path, params, decode, priority=Priority.BACKFILL)
            except RestError as exc:
                if not exc.retryable:
                    raise GiveUp(f"{path}: {exc}") from exc
                err = exc
            attempt += 1
            self.stats.retries += 1
            self.stats.last_error = f"{path}: {err}"
            if attempt >= self.max_attempts:
                raise GiveUp(f"{path}: gave up after {attempt} attempts: {err}")
            await asyncio.sleep(backoff.next_delay())
