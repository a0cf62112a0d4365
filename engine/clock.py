"""The clocks: local wall time for timestamps, monotonic time for intervals, and the
exchange's clock as measured from here.

Components whose decisions depend on time take a :class:`Clock` so tests can drive it
(:class:`ManualClock`); receive stamps on the hot path read ``time.time_ns`` directly.
:class:`ExchangeClock` is the one place where local time becomes exchange time (REST
weight windows, kline close times, candle history): ``engine.rest.clock_sync`` keeps
its offset measured.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


class Clock:
    """Real time. Subclass or replace in tests."""

    def time_ns(self) -> int:
        return time.time_ns()

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class ManualClock(Clock):
    """A clock that moves only when told to; for deterministic tests."""

    wall_ns: int = 1_700_000_000_000_000_000
    mono: float = 1000.0

    def time_ns(self) -> int:
        return self.wall_ns

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall_ns += int(seconds * 1e9)
        self.mono += seconds


SYSTEM = Clock()


class ExchangeClock:
    """Exchange time = local wall time + ``offset_ms`` (exchange − local clock).

    The offset is 0 until the first clock sync: local time is taken as exchange time.
    """

    def __init__(self, local: Clock = SYSTEM, offset_ms: float = 0.0) -> None:
        self.local = local
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        """Exchange time, epoch milliseconds."""
        return self.local.time_ns() // 1_000_000 + int(self.offset_ms)

    def now_s(self) -> float:
        """Exchange time, epoch seconds."""
        return self.local.time_ns() / 1e9 + self.offset_ms / 1000.0

    def to_exchange_ms(self, local_ns: int) -> int:
        """A local receive time as exchange time (ms)."""
        return local_ns // 1_000_000 + int(self.offset_ms)
