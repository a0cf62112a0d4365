"""REST client: one aiohttp session, every call paid for from the one weight budget.

Each call first acquires its weight from :class:`WeightBudget` (waiting, in priority
order, rather than exceeding it), then reports the server's ``X-MBX-USED-WEIGHT-1M``
back to it. A 429 or 418 blocks *all* calls until its ``Retry-After`` has passed, so one
caller cannot turn a rate limit into an IP ban. Binance error bodies become a
``RestError`` with the code and message.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import aiohttp
import msgspec

from engine.rest.budget import BudgetStatus, WeightBudget
from engine.binance.weights import request_weight

WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"


class Priority(IntEnum):
    """Who waits first when the weight budget is short: a broken book beats a backfill,
    which beats periodic polling."""

    RESYNC = 0
    BACKFILL = 1
    POLL = 2


class RestError(Exception):
    """A failed call, with Binance's error code when the body had one."""

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        super().__init__(f"HTTP {status}" + (f" {code}" if code is not None else "") + f": {msg}")
        self.status = status
        self.code = code
        self.msg = msg


class _ErrorBody(msgspec.Struct):
    code: int
    msg: str


@dataclass
class RestStats:
    requests: int = 0
    errors: int = 0
    last_error: str = ""


class RestClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0,
                 budget: WeightBudget | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.budget = budget or WeightBudget()
        self.stats = RestStats()
        self._session: aiohttp.ClientSession | None = None

    @property
    def used_weight(self) -> int:
        return self.budget.used

    def budget_status(self) -> BudgetStatus:
        return self.budget.status()

    async def get(self, path: str, params: dict[str, str | int] | None = None,
                  priority: Priority = Priority.POLL) -> bytes:
        """GET and return the body; raises RestError (or aiohttp/timeout errors)."""
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
                err = _error(resp.status, body)
                if resp.status in (418, 429):
                    retry = _retry_after(resp.headers.get("Retry-After"))
                    banned = resp.status == 418
                    self.budget.block(retry, banned, f"{'IP banned' if banned else 'rate limited'}"
                                      f" by Binance for {retry:.0f}s ({err.msg[:80]})")
                raise err
        except RestError as exc:
            self.stats.errors += 1
            self.stats.last_error = str(exc)[:200]
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, aiohttp.ClientConnectorError):
                self.budget.refund(weight)  # never reached Binance: it cost nothing
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 60.0
    except ValueError:
        return 60.0


def _error(status: int, body: bytes) -> RestError:
    try:
        err = msgspec.json.decode(body, type=_ErrorBody)
        return RestError(status, err.code, err.msg)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return RestError(status, None, body[:120].decode(errors="replace") or "no body")
