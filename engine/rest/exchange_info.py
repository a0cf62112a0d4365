"""``/api/v3/exchangeInfo``: which symbols exist, and the REST weight limit in force.

Read once at start: an unknown symbol is a clear error instead of a silently empty
screen, and the budget adopts the REQUEST_WEIGHT limit Binance announces (the docs' 6000
per minute may change; the local exchange announces short windows for tests).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

import aiohttp
import msgspec

from engine.config.settings import Settings
from engine.rest.client import Priority, RestClient, RestError

_SECONDS = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}


class _RateLimit(msgspec.Struct):
    rateLimitType: str  # noqa: N815 - wire names
    interval: str
    intervalNum: int  # noqa: N815
    limit: int


class _Symbol(msgspec.Struct):
    symbol: str
    status: str
    baseAsset: str = ""  # noqa: N815
    quoteAsset: str = ""  # noqa: N815


class _Info(msgspec.Struct):
    rateLimits: list[_RateLimit] = []  # noqa: N815
    symbols: list[_Symbol] = []


@dataclass(frozen=True)
class ExchangeInfo:
    symbols: dict[str, str] = field(default_factory=dict)  # symbol -> status (TRADING, ...)
    weight_limit: int | None = None
    weight_window_s: float | None = None


class UnknownSymbols(Exception):
    def __init__(self, symbols: list[str]) -> None:
        super().__init__(", ".join(symbols))
        self.symbols = symbols


def parse_exchange_info(body: bytes) -> ExchangeInfo:
    info = msgspec.json.decode(body, type=_Info)
    limit = window = None
    for rl in info.rateLimits:
        if rl.rateLimitType == "REQUEST_WEIGHT" and rl.interval in _SECONDS:
            limit, window = rl.limit, _SECONDS[rl.interval] * rl.intervalNum
    return ExchangeInfo({s.symbol: s.status for s in info.symbols}, limit, window)


async def fetch_exchange_info(rest: RestClient, symbols: tuple[str, ...]) -> ExchangeInfo:
    """exchangeInfo for ``symbols``; raises UnknownSymbols naming each one Binance rejects."""
    try:
        listed = json.dumps(list(symbols), separators=(",", ":"))  # Binance wants no spaces
        body = await rest.get("/api/v3/exchangeInfo", {"symbols": listed},
                              priority=Priority.RESYNC)
    except RestError as exc:
        if exc.code != -1121:
            raise
        unknown = [s for s in symbols if not await _exists(rest, s)]
        raise UnknownSymbols(unknown or list(symbols)) from None
    info = parse_exchange_info(body)
    missing = [s for s in symbols if s not in info.symbols]
    if missing:
        raise UnknownSymbols(missing)
    return info


async def _exists(rest: RestClient, symbol: str) -> bool:
    try:
        await rest.get("/api/v3/exchangeInfo", {"symbol": symbol}, priority=Priority.RESYNC)
    except RestError as exc:
        if exc.code == -1121:
            return False
        raise
    return True


async def unknown_symbols(settings: Settings, timeout_s: float = 5.0) -> list[str]:
    """Symbols Binance says do not exist; [] also when it cannot be asked right now.

    Used once before start so a typo is a clear error; when Binance is unreachable the
    engine starts anyway (and shows the connection problem) instead of refusing to run.
    """
    rest = RestClient(settings.connection.rest_url, timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            await fetch_exchange_info(rest, settings.symbols)
    except UnknownSymbols as exc:
        return exc.symbols
    except (RestError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError,
            msgspec.ValidationError, OSError):
        return []
    finally:
        await rest.close()
    return []
