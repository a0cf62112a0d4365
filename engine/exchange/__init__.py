"""Local Binance-compatible spot market-data exchange (WebSocket streams + REST).

Runs a seeded synthetic market per symbol (or replays an hftbacktest recording) behind
one aiohttp port, following Binance's spot API: payload keys, control protocol,
connection limits, REST weights and bans, and fault hooks for client tests. Only the
standard library, aiohttp and msgspec are used.

It is the test oracle of the engine beside it, so it imports nothing else of
``engine/`` and no other engine module imports it (``tests/test_architecture.py``);
``tui/demo.py`` is the one place that uses both.
"""

from .config import ExchangeConfig, SymbolSpec
from .connection import Connection
from .market import Market
from .server import LocalExchange

__all__ = ["Connection", "ExchangeConfig", "LocalExchange", "Market", "SymbolSpec"]
