"""The status snapshot UIs *pull* on their own timer, and how it is assembled.

A source (the live feed, a replay) reports what only it knows (:class:`SourceReport`:
connections, per-stream rows, REST, books, recording, replay progress …); the engine
adds what every engine has (uptime, bus consumers, the subscription) with
:func:`assemble`. Message rates per stream are sampled here once a second
(:class:`Rates`), from counters the source keeps anyway, never per message.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.book.keeper import BookStatus
    from engine.bus import Bus, ConsumerStats
    from engine.feed.link import ConnectionStatus
    from engine.gapfill.fetch import BackfillStats
    from engine.rest.budget import BudgetStatus
    from engine.rest.client import RestStats
    from engine.rest.clock_sync import ClockStatus
    from engine.storage.recorder import RecorderStatus
    from engine.subscription import Subscription

RATE_SAMPLE_S = 1.0
RATE_WINDOW = 5  # samples: rates are averaged over the last 5 s (klines arrive every 2 s)


@dataclass(frozen=True)
class StreamStatus:
    name: str
    kind: str
    symbol: str
    enabled: bool
    messages: int
    rate: float  # messages per second, sampled every second
    last_age_s: float  # seconds since the last message; -1 before the first
    latency_p50_ms: float | None = None  # receive − E, clock-offset corrected; None: no E
    latency_p99_ms: float | None = None
    stale: bool = False  # silent well past its expected cadence (engine.view.health)
    cadence_ms: float | None = None  # expected (or learned) period between messages


@dataclass(frozen=True)
class ReplayProgress:
    published: int
    total: int
    position_ns: int  # recorded receive time of the last event played


@dataclass(frozen=True)
class SourceReport:
    """What a source knows about itself; parts a source does not have stay empty."""

    streams: list[StreamStatus] = field(default_factory=list)
    connections: list[ConnectionStatus] = field(default_factory=list)
    frames: int = 0
    bad_frames: int = 0
    unknown_frames: int = 0
    sink_errors: int = 0  # receive-path bugs counted (never raised into the socket)
    rest: RestStats | None = None
    budget: BudgetStatus | None = None
    snapshots: int = 0
    snapshot_errors: int = 0
    polling: bool = False
    recording: RecorderStatus | None = None
    gaps: int = 0
    books: list[BookStatus] = field(default_factory=list)  # diff-depth local books
    replay: ReplayProgress | None = None
    clock: ClockStatus | None = None  # exchange clock calibration
    symbols_unknown: tuple[str, ...] = ()
    exchange_info_error: str = ""
    backfill: BackfillStats | None = None  # REST gap backfill; None when off
    history_error: str = ""  # the chart's candle history could not be loaded


@dataclass(frozen=True)
class EngineStatus(SourceReport):
    uptime_s: float = 0.0
    consumers: list[ConsumerStats] = field(default_factory=list)
    published: int = 0
    enabled: dict[str, bool] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    interval: str = ""

    @property
    def total_rate(self) -> float:
        return sum(s.rate for s in self.streams)

    @property
    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.connections)


_REPORT_FIELDS = tuple(f.name for f in fields(SourceReport))


def assemble(report: SourceReport, *, bus: Bus, subscription: Subscription,
             uptime_s: float) -> EngineStatus:
    """The engine-wide status: the source's report plus the bus and the subscription."""
    return EngineStatus(**{name: getattr(report, name) for name in _REPORT_FIELDS},
                        uptime_s=uptime_s, consumers=bus.stats(), published=bus.published,
                        enabled=dict(subscription.enabled),
                        symbols=tuple(subscription.symbols), interval=subscription.interval)


class Rates:
    """Messages per second of each stream, from cumulative counts sampled every second
    and averaged over :data:`RATE_WINDOW` samples."""

    def __init__(self, counts: Callable[[], Mapping[str, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.counts = counts
        self.clock = clock
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=RATE_WINDOW + 1)
        self._rates: dict[str, float] = {}

    def get(self, name: str) -> float:
        return self._rates.get(name, 0.0)

    def begin(self) -> None:
        """Start counting from zero now (every stream's count starts at 0)."""
        self._samples.clear()
        self._samples.append((self.clock(), {}))

    def sample(self) -> None:
        now = self.clock()
        counts = dict(self.counts())
        self._samples.append((now, counts))
        then, old = self._samples[0]
        if now > then:
            self._rates = {name: (n - old.get(name, 0)) / (now - then)
                           for name, n in counts.items()}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(RATE_SAMPLE_S)
            self.sample()
