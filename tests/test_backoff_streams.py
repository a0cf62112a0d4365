"""Pure pieces: the retry policy, stream naming, the outgoing rate limiter."""

from __future__ import annotations

import random

import pytest

from engine.retry import Backoff
from engine.feed.manager import RateLimiter
from engine.binance.streams import parse_stream_name, stream_name


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


@pytest.mark.parametrize(("kind", "kwargs", "name"), [
    ("trade", {}, "btcusdt@trade"),
    ("aggTrade", {}, "btcusdt@aggTrade"),
    ("kline", {"interval": "1M"}, "btcusdt@kline_1M"),
    ("bookTicker", {}, "btcusdt@bookTicker"),
    ("depthPartial", {"levels": 5, "speed_ms": 1000}, "btcusdt@depth5"),
    ("depthPartial", {"levels": 10, "speed_ms": 100}, "btcusdt@depth10@100ms"),
    ("depthUpdate", {"speed_ms": 100}, "btcusdt@depth@100ms"),
    ("depthUpdate", {"speed_ms": 1000}, "btcusdt@depth"),
    ("miniTicker", {}, "btcusdt@miniTicker"),
])
def test_stream_names_round_trip(kind: str, kwargs: dict, name: str) -> None:
    assert stream_name(kind, "BTCUSDT", **kwargs) == name
    ref = parse_stream_name(name)
    assert ref is not None and ref.kind == kind and ref.symbol == "BTCUSDT"


@pytest.mark.parametrize("name", [
    "btcusdt", "btcusdt@kline_2m", "btcusdt@depth7", "btcusdt@foo", "btcusdt@depth@50ms"])
def test_bad_stream_names(name: str) -> None:
    assert parse_stream_name(name) is None


def test_all_market_names() -> None:
    ref = parse_stream_name("!miniTicker@arr")
    assert ref is not None and ref.kind == "miniTicker" and ref.is_array
    ref = parse_stream_name("!bookTicker")
    assert ref is not None and ref.kind == "bookTicker" and not ref.is_array
    ref = parse_stream_name("!ticker_1h@arr")
    assert ref is not None and ref.kind == "ticker" and ref.param == "1h"
    ref = parse_stream_name("btcusdt@kline_1d@+08:00")
    assert ref is not None and ref.kind == "kline" and ref.param == "1d"


def test_rate_limiter_allows_n_per_second() -> None:
    now = [0.0]
    lim = RateLimiter(4, clock=lambda: now[0])
    for _ in range(4):
        assert lim.delay() == 0
        lim.note()
    assert 0.9 < lim.delay() <= 1.01
    now[0] = 1.0
    assert lim.delay() == 0
