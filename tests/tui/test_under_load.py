"""The UI never blocks the feed: same event rate with the monitor running, keys still fast."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.helpers import ROOT

BENCH = ROOT / "bench" / "tui_under_load.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tui_under_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_feed_rate_unchanged_with_the_monitor_running() -> None:
    bench = load_bench()  # the same measurement `make bench` reports
    proc, port = bench.start_exchange("6000")  # ~5k msg/s offered, in its own process
    try:
        alone = await bench.engine_alone(port, 2.0)
        ui = await bench.with_monitor(port, 2.0, presses=10)
    finally:
        proc.terminate()
        proc.wait(10)
    assert alone["msg_per_s"] > 2000, alone
    assert ui["msg_per_s"] >= 0.8 * alone["msg_per_s"], (alone, ui)
    assert ui["frames_per_s"] > 5, ui  # the screen really was being redrawn meanwhile
    assert ui["key_ms_p99"] < 500, ui
