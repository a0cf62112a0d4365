"""The one clock: wall time for timestamps, monotonic time for intervals.

Injectable so tests (and replay) can drive time; everything in the engine asks this
module instead of calling ``time`` directly.
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
