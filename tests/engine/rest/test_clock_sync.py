"""Clock calibration: the min-RTT sample, periodic re-sync, failures, and its setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.config import ConfigError, load_settings
from engine.errors import RestRejected
from engine.rest.client import Priority
from engine.rest.clock_sync import ClockSample, ClockSync, best_sample
from tests.helpers import run_cli, wait_until

# -- clock: pure estimation ------------------------------------------------------------


def test_best_sample_is_the_smallest_round_trip() -> None:
    true_offset = 250
    samples = [  # (t0, server, t1): asymmetric slow paths bias the offset, the fast one not
        ClockSample(1000.0, 1000 + 30 + true_offset, 1040.0),  # 30 out, 10 back
        ClockSample(2000.0, 2000 + 2 + true_offset, 2004.0),  # 2 out, 2 back (best)
        ClockSample(3000.0, 3000 + 1 + true_offset, 3090.0),  # 1 out, 89 back
    ]
    best = best_sample(samples)
    assert best is samples[1]
    assert best.rtt_ms == 4.0 and best.offset_ms == true_offset
    assert best_sample([]) is None
    assert samples[0].offset_ms == true_offset + 10  # what a naive single sample would say


class FakeTimeApi:
    """``/api/v3/time`` with scripted (out, back) delays on a manual clock; None = failure."""

    def __init__(self, clock: ManualClock, offset_ms: int,
                 delays: list[tuple[float, float] | None]) -> None:
        self.clock, self.offset_ms, self.delays = clock, offset_ms, delays
        self.calls: list[tuple[str, Priority]] = []

    async def fetch(self, path: str, params: dict[str, str | int] | None,
                    decode: Callable[[bytes], Any], priority: Priority = Priority.POLL) -> Any:
        self.calls.append((path, priority))
        delay = self.delays[(len(self.calls) - 1) % len(self.delays)]
        if delay is None:
            raise RestRejected(503, None, "unavailable")
        self.clock.advance(delay[0] / 1000)
        server = self.clock.wall_ns // 1_000_000 + self.offset_ms
        self.clock.advance(delay[1] / 1000)
        return decode(b'{"serverTime":%d}' % server)


async def test_sync_keeps_min_rtt_sample_and_counts_failures() -> None:
    clock = ManualClock()
    api = FakeTimeApi(clock, -1200, [(40, 5), (3, 3), None, (1, 60), (20, 20)])
    sync = ClockSync(api, interval_s=300, samples=5, clock=clock)
    assert sync.status().offset_ms is None and sync.offset_ms == 0.0
    best = await sync.sync_once()
    assert best is not None and best.rtt_ms == 6.0 and best.offset_ms == -1200
    st = sync.status()
    assert (st.offset_ms, st.rtt_ms, st.syncs, st.failures) == (-1200, 6.0, 1, 0)
    assert st.last_sync_age_s == 0.0
    assert set(api.calls) == {("/api/v3/time", Priority.BACKFILL)}
    clock.advance(7)
    assert sync.status().last_sync_age_s == 7.0

    api.delays = [None]  # exchange down: the old estimate stays, the failure is counted
    assert await sync.sync_once() is None
    st = sync.status()
    assert (st.offset_ms, st.syncs, st.failures) == (-1200, 1, 1)
    assert "503" in st.last_error


async def test_sync_repeats_periodically() -> None:
    clock = ManualClock()
    api = FakeTimeApi(clock, 7, [(1, 1)])
    sync = ClockSync(api, interval_s=0.01, samples=2, clock=clock)
    sync.start()
    try:
        await wait_until(lambda: sync.syncs >= 3, 5, "three syncs")
    finally:
        await sync.stop()
    assert sync.offset_ms == 7


# -- config ---------------------------------------------------------------------------


def test_clock_sync_interval_setting(capsys) -> None:
    assert load_settings().connection.clock_sync_interval_s == 300
    assert load_settings(None, [("connection.clock_sync_interval_s", 30)]
                         ).connection.clock_sync_interval_s == 30.0
    with pytest.raises(ConfigError):
        load_settings(None, [("connection.clock_sync_interval_s", 0)])
    for value, expected in (
            ("0.5", "connection.clock_sync_interval_s: 0.5 is too small; minimum is 1.0"),
            ("soon", "connection.clock_sync_interval_s: 'soon' is not allowed; expected a number"),
            ("100000", "connection.clock_sync_interval_s: 100000 is too large; maximum is 86400")):
        code, err = run_cli(capsys, "--no-ui", "--set", f"connection.clock_sync_interval_s={value}")
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("binance-live: config error: ")
        assert expected in lines[0]
