"""The engine's settings schema: every key, its type, its default and what is allowed.

Defaults are written here and only here: ``config/settings.yaml`` restates them for the
reader, and ``tests/engine/config`` checks that the file and the README table agree with
this schema. Front-ends own their own sections of the same file (``tui.settings``: the
``ui`` section and ``verbose``); the engine skips them (``FRONT_END_KEYS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.binance.streams import (
    DEPTH_SPEEDS_MS,
    KLINE_INTERVALS,
    PARTIAL_DEPTH_LEVELS,
    SNAPSHOT_LIMITS,
)

LIVE_WS_URL = "wss://stream.binance.com:9443"
LIVE_REST_URL = "https://api.binance.com"

# Top-level keys of the settings file that a front-end validates (tui.settings).
FRONT_END_KEYS = ("ui", "verbose")


def _choices(*values: object) -> dict[str, Any]:
    return {"choices": tuple(values)}


@dataclass(frozen=True)
class StreamToggle:
    enabled: bool = True


@dataclass(frozen=True)
class KlineStream:
    enabled: bool = True
    interval: str = field(default="1m", metadata=_choices(*KLINE_INTERVALS))


@dataclass(frozen=True)
class PartialDepthStream:
    enabled: bool = True
    levels: int = field(default=20, metadata=_choices(*PARTIAL_DEPTH_LEVELS))
    speed_ms: int = field(default=100, metadata=_choices(*DEPTH_SPEEDS_MS))


@dataclass(frozen=True)
class DiffDepthStream:
    enabled: bool = False
    speed_ms: int = field(default=100, metadata=_choices(*DEPTH_SPEEDS_MS))


@dataclass(frozen=True)
class Streams:
    trade: StreamToggle = StreamToggle()
    aggTrade: StreamToggle = StreamToggle()  # noqa: N815 - Binance's stream name
    kline: KlineStream = KlineStream()
    bookTicker: StreamToggle = StreamToggle()  # noqa: N815
    depthPartial: PartialDepthStream = PartialDepthStream()  # noqa: N815
    depthUpdate: DiffDepthStream = DiffDepthStream()  # noqa: N815
    miniTicker: StreamToggle = StreamToggle(enabled=False)  # noqa: N815


@dataclass(frozen=True)
class Storage:
    enabled: bool = True
    directory: str = "data"
    flush_interval_s: float = field(default=2.0, metadata={"min": 0.05, "max": 300.0})
    flush_rows: int = field(default=50_000, metadata={"min": 1})
    rotate_minutes: float = field(default=60.0, metadata={"min": 0.01, "max": 1440.0})
    rotate_mb: float = field(default=256.0, metadata={"min": 0.001})
    raw: bool = False
    # fill trade/aggTrade id gaps and missed klines from REST (engine.backfill)
    backfill: bool = True


@dataclass(frozen=True)
class OrderBook:
    """REST snapshot polling (the seed's ``--order-book-snapshot``)."""

    enabled: bool = False
    limit: int = field(default=1000, metadata=_choices(*SNAPSHOT_LIMITS))
    interval_s: float = field(default=5.0, metadata={"min": 0.1})
    # depth of the snapshot a diff-depth book is (re)built from; Binance accepts 1..5000
    sync_limit: int = field(default=5000, metadata={"min": 5, "max": 5000})


@dataclass(frozen=True)
class Connection:
    ws_url: str = LIVE_WS_URL
    rest_url: str = LIVE_REST_URL
    backoff_initial_s: float = field(default=0.5, metadata={"min": 0.01})
    backoff_max_s: float = field(default=30.0, metadata={"min": 0.01})
    backoff_reset_after_s: float = field(default=60.0, metadata={"min": 0.0})
    idle_ping_after_s: float = field(default=5.0, metadata={"min": 0.25})
    stale_after_s: float = field(default=15.0, metadata={"min": 0.1})
    connect_timeout_s: float = field(default=10.0, metadata={"min": 0.1})
    max_streams_per_connection: int = field(default=1024, metadata={"min": 1, "max": 1024})
    max_messages_per_s: int = field(default=4, metadata={"min": 1, "max": 5})
    clock_sync_interval_s: float = field(default=300.0, metadata={"min": 1.0, "max": 86400.0})
    # make-before-break replacement of each connection before Binance's 24 h close
    rollover_after_s: float = field(default=84600.0, metadata={"max": 86400.0})
    rollover_at: str = ""  # "HH:MM" UTC: also roll every connection over daily then; "" = off
    redundancy: int = field(default=1, metadata=_choices(1, 2))  # connections per shard


@dataclass(frozen=True)
class Settings:
    symbols: tuple[str, ...] = ("BTCUSDT",)
    streams: Streams = Streams()
    storage: Storage = Storage()
    order_book: OrderBook = OrderBook()
    connection: Connection = Connection()
