"""``--demo``: run the bundled local exchange in-process and point the settings at it.

The only place that uses both the engine and the local exchange (``engine.exchange``
stays independent of the engine it tests).
"""

from __future__ import annotations

import dataclasses

from engine.config import Settings
from engine.exchange import ExchangeConfig, LocalExchange


async def start_demo(settings: Settings, rate: float = 40.0) -> tuple[LocalExchange, Settings]:
    """Start a calm local market for the configured symbols on a free loopback port."""
    exchange = LocalExchange(ExchangeConfig(symbols=tuple(settings.symbols), rate=rate,
                                            history_minutes=180))
    await exchange.start(host="127.0.0.1", port=0)
    conn = dataclasses.replace(settings.connection, ws_url=exchange.ws_url,
                               rest_url=exchange.rest_url)
    return exchange, dataclasses.replace(settings, connection=conn)
