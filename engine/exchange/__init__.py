"""Local Binance-compatible spot market-data exchange (WebSocket streams + REST).

Runs a seeded synthetic market per symbol (or replays an hftbacktest
recording) behind one aiohttp port, following /work/shared/binance-protocol.md:
payload keys, control protocol, connection limits, REST weights and bans, and
fault hooks for client tests. Only stdlib, aiohttp and msgspec are used.
"""

from .config import ExchangeConfig, SymbolSpec
from .connection import Connection
from .market import Market
from .server import LocalExchange

__all__ = ["Connection", "ExchangeConfig", "LocalExchange", "Market", "SymbolSpec"]
