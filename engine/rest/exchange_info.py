"""``/api/v3/exchangeInfo``: which symbols exist, and the REST weight limit in force.

Read at start (a typo is a clear error instead of a silently empty screen) and before a
symbol is added at runtime; the budget adopts the REQUEST_WEIGHT limit Binance announces
(the documented 6000 per minute may change; the local exchange announces short windows
for tests).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from engine.binance.rest_rows import ExchangeInfo, decode_exchange_info
from engine.errors import RestError, RestRejected, UnknownSymbols
from engine.rest.client import Priority, RestClient
from engine.retry import Backoff

INVALID_SYMBOL = -1121  # Binance's error code for a symbol it does not list
PATH = "/api/v3/exchangeInfo"


async def fetch_exchange_info(rest: RestClient, symbols: Sequence[str]) -> ExchangeInfo:
    """exchangeInfo for ``symbols``; raises UnknownSymbols naming each one Binance rejects."""
    listed = json.dumps(list(symbols), separators=(",", ":"))  # Binance wants no spaces
    try:
        info = await rest.fetch(PATH, {"symbols": listed}, decode_exchange_info,
                                priority=Priority.RESYNC)
    except RestRejected as exc:
        if exc.code != INVALID_SYMBOL:
            raise
        unknown = [s for s in symbols if not await _exists(rest, s)]
        raise UnknownSymbols(unknown or list(symbols)) from None
    missing = [s for s in symbols if s not in info.symbols]
    if missing:
        raise UnknownSymbols(missing)
    return info


async def _exists(rest: RestClient, symbol: str) -> bool:
    try:
        await rest.get(PATH, {"symbol": symbol}, priority=Priority.RESYNC)
    except RestRejected as exc:
        if exc.code == INVALID_SYMBOL:
            return False
        raise
    return True


class ExchangeInfoLoader:
    """Loads exchangeInfo beside the feed (never delays it), retrying while offline with
    the one retry policy; adopts the announced weight limit."""

    def __init__(self, rest: RestClient, symbols: Sequence[str], backoff: Backoff) -> None:
        self.rest = rest
        self.symbols = tuple(symbols)
        self.backoff = backoff
        self.info: ExchangeInfo | None = None
        self.unknown: tuple[str, ...] = ()
        self.error = ""

    async def run(self) -> None:
        while True:
            try:
                info = await fetch_exchange_info(self.rest, self.symbols)
            except UnknownSymbols as exc:
                self.unknown = tuple(exc.symbols)
                self.error = f"unknown symbols: {exc}"
                return
            except RestError as exc:
                self.error = f"exchangeInfo: {exc}"
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self.info = info
            self.error = ""
            if info.weight_limit and info.weight_window_s:
                self.rest.budget.configure(info.weight_limit, info.weight_window_s)
            return


async def unknown_symbols(rest_url: str, symbols: Sequence[str],
                          timeout_s: float = 5.0) -> list[str]:
    """Symbols Binance says do not exist; [] also when it cannot be asked right now.

    Used once before start so a typo is a clear error; when Binance is unreachable the
    engine starts anyway (and shows the connection problem) instead of refusing to run.
    """
    rest = RestClient(rest_url, timeout_s=timeout_s)
    try:
        async with asyncio.timeout(timeout_s):
            await fetch_exchange_info(rest, symbols)
    except UnknownSymbols as exc:
        return exc.symbols
    except (RestError, TimeoutError):
        return []
    finally:
        await rest.close()
    return []
