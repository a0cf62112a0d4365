"""REST client: one aiohttp session, Binance's weight header and ban replies honoured.

Every call reads ``X-MBX-USED-WEIGHT-1M``; a 429 or 418 blocks *all* calls until its
``Retry-After`` has passed, so one poller cannot turn a rate limit into an IP ban.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import IntEnum

import aiohttp
import msgspec


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
    used_weight: int = 0
    rate_limited: int = 0
    banned: int = 0
    blocked_until: float = 0.0  # monotonic
    last_error: str = ""


class RestClient:
    def __init__(self, base_url: str, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.stats = RestStats()
        self._session: aiohttp.ClientSession | None = None

    async def get(self, path: str, params: dict[str, str | int] | None = None,
                  priority: Priority = Priority.POLL) -> bytes:
        """GET and return the body; raises RestError (or aiohttp/timeout errors)."""
        wait = self.stats.blocked_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        self.stats.requests += 1
        try:
            async with self._session.get(self.base_url + path, params=params) as resp:
                body = await resp.read()
                used = resp.headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit():
                    self.stats.used_weight = int(used)
                if resp.status == 200:
                    return body
                if resp.status in (418, 429):
                    retry = float(resp.headers.get("Retry-After", "60") or 60)
                    self.stats.blocked_until = time.monotonic() + retry
                    if resp.status == 418:
                        self.stats.banned += 1
                    else:
                        self.stats.rate_limited += 1
                raise _error(resp.status, body)
        except RestError as exc:
            self.stats.errors += 1
            self.stats.last_error = str(exc)
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:200]
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error(status: int, body: bytes) -> RestError:
    try:
        err = msgspec.json.decode(body, type=_ErrorBody)
        return RestError(status, err.code, err.msg)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return RestError(status, None, body[:120].decode(errors="replace") or "no body")
