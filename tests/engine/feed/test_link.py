"""A link's outgoing rate limiter: at most N sends in any 1-second window."""

from __future__ import annotations

from engine.feed.link import RateLimiter


def test_rate_limiter_allows_n_per_second() -> None:
    now = [0.0]
    lim = RateLimiter(4, clock=lambda: now[0])
    for _ in range(4):
        assert lim.delay() == 0
        lim.note()
    assert 0.9 < lim.delay() <= 1.01
    now[0] = 1.0
    assert lim.delay() == 0
