"""The monitor under load: feed rate with and without the UI, frames drawn, key latency.

The local exchange runs in its own process, at its fastest rate and at a rate that gives
about 10k msg/s. For each, in the same run:
  engine alone          msg/s through the bus and process CPU
  engine + monitor      the same with the Textual app running (headless, 160x45)
  UI CPU share          (CPU with UI − CPU without) / wall time
  frames/s              compositor updates actually written by the app
  key → screen          `p` (freeze) pressed → the status bar shows it and a frame is
                        written, p50/p99 over 40 presses

Usage: python bench/tui_under_load.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual import events  # noqa: E402

from engine.config import load_settings  # noqa: E402
from engine.engine import Engine  # noqa: E402
from tui.app import MonitorApp  # noqa: E402
from tui.panels.status import StatusBar  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_exchange(rate: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "engine.exchange", "--port", str(port),
                             "--rate", rate, "--symbols", "BTCUSDT"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if "local exchange" not in proc.stdout.readline():
        proc.kill()
        raise SystemExit("exchange did not start")
    return proc, port


def settings(port: int) -> Any:
    return load_settings(None, [
        ("storage.enabled", False), ("streams.depthUpdate.enabled", True),
        ("connection.ws_url", f"ws://127.0.0.1:{port}"),
        ("connection.rest_url", f"http://127.0.0.1:{port}")])


async def window(engine: Engine, seconds: float) -> dict[str, float]:
    n0, t0, c0 = engine.bus.published, time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    n1, t1, c1 = engine.bus.published, time.perf_counter(), time.process_time()
    return {"msg_per_s": (n1 - n0) / (t1 - t0), "cpu_share": (c1 - c0) / (t1 - t0)}


async def engine_alone(port: int, seconds: float) -> dict[str, float]:
    engine = Engine(settings(port))
    await engine.start()
    await asyncio.sleep(1.5)
    result = await window(engine, seconds)
    await engine.stop(drain_timeout=1)
    return result


async def with_monitor(port: int, seconds: float, presses: int = 40) -> dict[str, Any]:
    app = MonitorApp(settings(port))
    frames = [0]
    real_display = app._display

    def counting_display(*args: Any, **kwargs: Any) -> Any:
        frames[0] += 1
        return real_display(*args, **kwargs)

    app._display = counting_display  # type: ignore[method-assign]
    async with app.run_test(size=(160, 45)):
        while app.engine is None or app.engine.bus.published == 0:
            await asyncio.sleep(0.05)
        engine = app.engine
        await asyncio.sleep(1.5)
        f0, t0 = frames[0], time.perf_counter()
        result: dict[str, Any] = await window(engine, seconds)
        result["frames_per_s"] = (frames[0] - f0) / (time.perf_counter() - t0)
        bar = app.query_one(StatusBar)
        driver = app._driver
        assert driver is not None

        def press(key: str) -> None:
            """As a terminal key arrives: through the driver (Pilot.press would also wait
            for the loop to go idle, which a saturated feed never does)."""
            event = events.Key(key, key)
            event.set_sender(app)
            driver.send_message(event)

        latencies = []
        for i in range(presses):
            want = i % 2 == 0  # freeze on even presses, thaw on odd ones
            f_before = frames[0]
            start = time.perf_counter()
            press("p")
            while (("FROZEN" in bar._text.plain) != want) or frames[0] == f_before:
                await asyncio.sleep(0.0005)
            latencies.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.05)
        latencies.sort()
        result["key_ms_p50"] = statistics.median(latencies)
        result["key_ms_p99"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        await app.action_quit()
    return result


async def scenario(rate: str, seconds: float) -> dict[str, Any]:
    proc, port = start_exchange(rate)
    try:
        alone = await engine_alone(port, seconds)
        ui = await with_monitor(port, seconds)
    finally:
        proc.terminate()
        proc.wait(10)
    ui["ui_cpu_share"] = max(0.0, ui["cpu_share"] - alone["cpu_share"])
    return {"alone": alone, "with_ui": ui}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate-10k", default="12500", help="exchange ops/s giving ~10k msg/s")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/tui_under_load.json")
    args = ap.parse_args()
    results = {"max": await scenario("max", args.seconds),
               "~10k": await scenario(args.rate_10k, args.seconds)}
    print(f"\nmonitor under load (BTCUSDT, 6 streams incl. diff depth; exchange in its own "
          f"process; {args.seconds:.0f}s windows)\n")
    print(f"{'offered':8} {'msg/s alone':>12} {'msg/s + UI':>11} {'ratio':>6} "
          f"{'UI CPU':>7} {'frames/s':>9} {'key p50 ms':>11} {'key p99 ms':>11}")
    for name, r in results.items():
        a, u = r["alone"], r["with_ui"]
        print(f"{name:8} {a['msg_per_s']:>12,.0f} {u['msg_per_s']:>11,.0f} "
              f"{u['msg_per_s'] / max(a['msg_per_s'], 1):>6.2f} {u['ui_cpu_share']:>7.0%} "
              f"{u['frames_per_s']:>9.1f} {u['key_ms_p50']:>11.1f} {u['key_ms_p99']:>11.1f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
