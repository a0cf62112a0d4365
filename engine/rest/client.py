"""REST client: one aiohttp session, every call paid for from the one weight budget.

Each call first acquires its weight from :class:`WeightBudget` (waiting, in priority
order, rather than exceeding it), then reports the server's ``X-MBX-USED-WEIGHT-1M``
back to it. A 429 or 418 blocks *all* calls until its ``Retry-After`` has passed, so one
caller cannot turn a rate limit into an IP ban.

Errors are translated once, here: whatever aiohttp, the OS or msgspec raise becomes one
of the ``RestError`` family (``engine.errors``): ``RestUnavailable`` (no reply),
``RestRejected`` / ``RateLimited`` / ``Banned`` (an HTTP error, with Binance's code) or
``RestBadReply`` (a body that does not decode). Callers catch ``RestError`` and nothing
else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

import aiohttp

from engine.binance.rest_rows import DECODE_ERRORS, decode_error
from engine.binance.weights import request_weight
from engine.errors import Banned, RateLimited, RestBadReply, RestRejected, RestUnavailable
from engine.rest.budget import BudgetStatus, WeightBudget

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
MAX_BODY_IN_ERROR = 120  # a non-JSON error body (a gateway's HTML page) is quoted this far
T = TypeVar("T")
Params = dict[str, str | int]


class Priority(IntEnum):
    """Who waits first when the weight budget is short: a broken book beats a backfill,
    which beats periodic polling."""

    RESYNC = 0
    BACKFILL = 1
    POLL = 2


@dataclass
class RestStats:
    requests: int = 0
    errors: int = 0
    last_error: str = ""


class RestClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0,
                 budget: WeightBudget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.budget = budget or WeightBudget()
        self.stats = RestStats()
        self._session: aiohttp.ClientSession | None = None

    def budget_status(self) -> BudgetStatus:
        return self.budget.status()

    async def get(self, path: str, params: Params | None = None,
                  priority: Priority = Priority.POLL) -> bytes:
        """GET and return the body of a 200 reply; raises only ``RestError``\\ s."""
        weight = request_weight(path, params)
        await self.budget.acquire(weight, int(priority))
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        self.stats.requests += 1
        try:
            async with self._session.get(self.base_url + path, params=params) as resp:
                body = await resp.read()
                used = resp.headers.get(WEIGHT_HEADER)
                if used is not None and used.isdigit():
                    self.budget.note_server_used(int(used))
                if resp.status == 200:
                    return body
                raise self._rejected(resp.status, body, resp.headers.get("Retry-After"))
        except RestRejected as exc:
            self._count(str(exc))
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
            if not sent:
                self.budget.refund(weight)  # never reached the server: it cost nothing
            error = RestUnavailable(_describe(exc, self.timeout_s), sent=sent)
            self._count(str(error))
            raise error from exc

    async def fetch(self, path: str, params: Params | None, decode: Callable[[bytes], T],
                    priority: Priority = Priority.POLL) -> T:
        """GET and decode; a body that does not decode is a ``RestBadReply``."""
        body = await self.get(path, params, priority)
        try:
            return decode(body)
        except (*DECODE_ERRORS, ValueError, TypeError) as exc:
            error = RestBadReply(f"{path}: bad reply: {exc}")
            self._count(str(error))
            raise error from exc

    def _rejected(self, status: int, body: bytes, retry_after: str | None) -> RestRejected:
        parsed = decode_error(body)
        code, msg = parsed if parsed is not None else (
            None, body[:MAX_BODY_IN_ERROR].decode(errors="replace") or "no body")
        if status not in (418, 429):
            return RestRejected(status, code, msg)
        retry = _retry_after(retry_after)
        banned = status == 418
        self.budget.block(retry, banned, f"{'IP banned' if banned else 'rate limited'} by "
                                         f"Binance for {retry:.0f}s ({msg})")
        return (Banned if banned else RateLimited)(status, code, msg, retry)

    def _count(self, error: str) -> None:
        self.stats.errors += 1
        self.stats.last_error = error

    async def close(self) -> None:
        self.budget.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 60.0
    except ValueError:
        return 60.0


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no reply within {timeout_s:g}s"
    return f"{type(exc).__name__}: {exc}"
