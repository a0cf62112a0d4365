"""The one retry policy: capped exponential backoff with full jitter, never giving up.

Full jitter (delay drawn uniformly from [0, min(cap, base * 2**attempt)]) spreads
reconnect storms after a mass disconnect; a connection that stayed up for
``reset_after`` seconds starts again from the smallest delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    initial: float = 0.5
    cap: float = 30.0
    reset_after: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def ceiling(self) -> float:
        """Upper bound of the next delay (grows ×2 per failure, capped)."""
        return min(self.cap, self.initial * (2 ** min(self.attempt, 62)))

    def next_delay(self) -> float:
        delay = self.rng.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def connected_for(self, seconds: float) -> None:
        """Report how long the last connection lived; a stable one resets the policy."""
        if seconds >= self.reset_after:
            self.attempt = 0
