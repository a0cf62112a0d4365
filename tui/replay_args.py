"""``--replay DIR [--speed] [--from] [--to]``: the flags' values and what they ask for.

Errors name the flag, the value and what is allowed (one line, exit 2), as every other
setting's do; the engine's own replay errors say nothing of flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from engine.errors import ConfigError, ReplayError
from engine.source.base import SourceFactory


def parse_speed(text: str) -> float:
    """``max`` (as fast as possible, 0.0) or a positive number (1 = real time)."""
    if text.strip().lower() in ("max", "inf"):
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not (speed > 0 and math.isfinite(speed)):
        raise ConfigError(f"--speed: {text!r} is not allowed; allowed: max or a positive "
                          "number (1 = real time, 10 = ten times faster)")
    return speed


def parse_time(text: str, flag: str = "--from") -> int:
    """ISO-8601 (UTC unless an offset is given, optional ``Z``) or epoch ms → epoch ns."""
    value = text.strip()
    try:
        if value.isdigit():
            return int(value) * 1_000_000
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a time; allowed: ISO-8601 UTC "
                          "(2024-08-08T23:55:00, optional Z) or epoch ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


@dataclass(frozen=True)
class ReplaySpec:
    """What ``--replay DIR [--speed] [--from] [--to]`` asked for."""

    root: Path
    speed: float = 1.0
    start_ns: int | None = None
    end_ns: int | None = None

    def check(self) -> None:
        """Fail early (one line) on a missing or empty recording, before any UI starts."""
        from engine.storage.reader import check_recording  # pyarrow: only for a replay

        try:
            check_recording(self.root)
        except ReplayError as exc:
            raise ConfigError(f"--replay: {exc}") from None

    def source(self) -> SourceFactory:
        """The source an ``Engine`` plays this recording with."""
        from engine.source.replay import Replay

        return Replay.factory(self.root, self.speed, self.start_ns, self.end_ns)
