"""The exchange's counters (what tests and benchmarks read off it)."""

from __future__ import annotations


class Stats:
    """Counters; attribute or item access (``ex.stats.frames_sent`` / ``ex.stats["..."]``)."""

    def __init__(self) -> None:
        self.connections_accepted = 0
        self.connections_closed = 0
        self.frames_sent = 0
        self.messages_received = 0
        self.rest_requests = 0
        self.slow_consumers_closed = 0
        self.ops = 0
        self.replay_frames = 0

    def __getitem__(self, key: str) -> int:
        return getattr(self, key)

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))
