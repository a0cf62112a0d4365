"""The UI never blocks the feed or the loop: a loaded feed with the monitor running.

One measurement, shared with `make bench-components` (bench/tui_under_load.py): the engine
alone, then the monitor, against an exchange in its own process offering the bench's
LOADED_RATE (~20k msg/s, chosen there from the capacity measured on this box). Meanwhile a
5 ms ticker on the app's loop records how late it wakes, and `p` is pressed 100 times.

Bounds from runs on the shared 2-core box (load 1–8), healthy tree vs the drill
ui_refresh_blocks_50ms (a 50 ms sleep in the 15 Hz refresh). Lag and key figures exclude
the time the loop thread waited for a CPU (the bench explains): that keeps them steady on
a busy box, where the wall figures varied 5x with load and overlapped the drill's.

  figure (own)        healthy    drill      bound  why
  long blocks / s     0.1–0.4    4.8–11.8   2      the drill holds the loop ≥ 45 ms per refresh
  key p50 ms          9–26       107–168    80     every press runs the refresh: ≥ 50 ms each
  key p99 ms          56–123     204–310    200    p99 = 2nd worst of 100; GC hits ~2 presses
  loop lag p99 ms     16–46      101–148    150    not the drill's catch: a full GC pass
  loop lag max ms     20–135     115–236    300    (gen2, 55–105 ms CPU every ~2.5 s) can own
                                                   1 % of ~400 ticks; these catch far worse
"""

from __future__ import annotations

import gc
import importlib.util
from types import ModuleType

import pytest

from tests.helpers import ROOT

BENCH = ROOT / "bench" / "tui_under_load.py"

LONG_BLOCKS_PER_S = 2.0
KEY_P50_MS = 80.0
KEY_P99_MS = 200.0
LAG_P99_MS = 150.0
LAG_MAX_MS = 300.0
STARVED_CPU_WAIT = 0.6  # share of the span the loop thread sat waiting for a CPU


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tui_under_load", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# `make test` traces coverage; a tracer on the loop thread is itself a block (7.8 long blocks/s
# and key p50 68 ms under it, healthy tree), so this measurement runs untraced.
@pytest.mark.no_cover
async def test_loaded_feed_keeps_its_rate_and_the_ui_never_blocks_the_loop() -> None:
    bench = load_bench()  # the same measurement `make bench-components` reports
    # the whole suite's heap (hundreds of tests' leftovers) is not the app's: frozen, the
    # app's full collections scan only what it made itself (one pass of the suite's heap
    # was a 323 ms block)
    gc.collect()
    gc.freeze()
    try:
        result = await bench.scenario(bench.LOADED_RATE, seconds=1.5, warmup=1.0, presses=100)
    finally:
        gc.unfreeze()
    alone, ui = result["alone"], result["with_ui"]
    offered = float(bench.LOADED_RATE) * 0.8  # msg/s, at the exchange's ~0.8 msg per op
    assert ui["presses"] == 100 and ui["lag_samples"] > 100, ui
    assert ui["long_blocks_per_s"] < LONG_BLOCKS_PER_S, f"the UI holds the loop: {ui}"
    assert ui["key_ms_p50"] < KEY_P50_MS, f"keys are slow: {ui}"
    assert ui["key_ms_p99"] < KEY_P99_MS, f"keys are slow: {ui}"
    assert ui["lag_ms_p99"] < LAG_P99_MS, f"the UI holds the loop: {ui}"
    assert ui["lag_ms_max"] < LAG_MAX_MS, f"the UI holds the loop: {ui}"
    # The feed rate is wall-clock: it shows whether the UI slows the feed only while the box
    # lets this process run. Healthy runs kept 0.87–1.14 of the engine alone with the loop
    # thread waiting for a CPU up to 80 % of the time, but fell to 0.70 (over the whole
    # probed span) and 0.31 (over a 1.5 s window) at 76–84 %; so it is judged over the span,
    # and only below 60 %. The drill breaks the loop bounds above on any box.
    starved = ui["cpu_wait_share"] >= STARVED_CPU_WAIT
    assert ui["span_msg_per_s"] > (0.1 if starved else 0.4) * offered, ui  # it was loaded
    if not starved:
        assert ui["span_msg_per_s"] >= 0.75 * alone["msg_per_s"], f"the feed slowed: {alone} {ui}"
    assert ui["frames_per_s"] > 1, ui  # the screen was being redrawn (3.7/s at 80 % CPU wait)
