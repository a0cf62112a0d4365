"""The retry policy: exponential backoff with full jitter, capped, reset by a stable link."""

from __future__ import annotations

import random

from engine.retry import Backoff


def test_backoff_grows_exponentially_with_full_jitter_and_is_capped() -> None:
    b = Backoff(initial=0.5, cap=8.0, reset_after=60.0, rng=random.Random(1))
    ceilings = []
    for _ in range(10):
        ceilings.append(b.ceiling())
        d = b.next_delay()
        assert 0.0 <= d <= ceilings[-1]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0]


def test_backoff_never_gives_up_and_resets_after_a_stable_connection() -> None:
    b = Backoff(initial=1.0, cap=30.0, reset_after=60.0, rng=random.Random(2))
    for _ in range(10_000):
        assert b.next_delay() <= 30.0
    b.connected_for(5.0)
    assert b.ceiling() == 30.0  # a short-lived connection does not reset
    b.connected_for(61.0)
    assert b.ceiling() == 1.0


def test_jitter_spreads_delays() -> None:
    delays = [Backoff(initial=1.0, cap=30.0, attempt=5, rng=random.Random(i)).next_delay()
              for i in range(200)]
    assert min(delays) < 5 and max(delays) > 25


def test_a_connection_that_lived_exactly_reset_after_resets() -> None:
    b = Backoff(initial=1.0, cap=30.0, reset_after=60.0, attempt=4)
    b.connected_for(59.999)
    assert b.ceiling() == 16.0
    b.connected_for(60.0)
    assert b.ceiling() == 1.0 and b.attempt == 0


def test_an_uncapped_policy_saturates_instead_of_overflowing() -> None:
    """2**10_000 seconds would not even fit a float: the exponent stops at 62 doublings."""
    b = Backoff(initial=0.5, cap=float("inf"), attempt=10_000, rng=random.Random(3))
    assert b.ceiling() == 0.5 * 2.0**62
    assert 0.0 <= b.next_delay() <= 0.5 * 2.0**62
