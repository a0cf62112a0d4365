"""Events/s through the bus with the local exchange at max speed, in a separate process.

Rows, all measured in the same run against the same exchange process:
  raw receive   – the engine's WebSocket client, frames counted and discarded (the limit)
  engine        – receive → decode → bus, one inline counting consumer
  engine+task   – the same plus an async task consumer and a thread consumer
  decode+bus    – no socket: real recorded frames through decoder + bus (engine ceiling)

Usage: python bench/bus_throughput.py [--seconds 8] [--symbols BTCUSDT,ETHUSDT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import load_settings  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.feed.websocket import open_ws  # noqa: E402
from engine.subscription import Subscription  # noqa: E402

STREAMS = ("trade", "aggTrade", "bookTicker", "depthUpdate", "depthPartial", "kline")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_exchange(port: int, symbols: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.exchange", "--port", str(port), "--rate", "max",
         "--symbols", symbols], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "local exchange" not in line:
        proc.kill()
        raise SystemExit(f"exchange did not start: {line!r}")
    return proc


def settings(port: int, symbols: list[str]) -> Any:
    return load_settings(None, [
        ("symbols", symbols), ("storage.enabled", False),
        ("connection.ws_url", f"ws://127.0.0.1:{port}"),
        ("connection.rest_url", f"http://127.0.0.1:{port}"),
        ("streams.depthUpdate.enabled", True),
    ])


async def measure_raw(port: int, symbols: list[str], seconds: float) -> dict[str, float]:
    s = settings(port, symbols)
    names = Subscription(s.streams, s.symbols).names()
    count = [0]

    def sink(frames: list[bytes], recv_ns: int) -> None:
        count[0] += len(frames)

    client = await open_ws(f"ws://127.0.0.1:{port}/stream?streams={'/'.join(names)}", sink, 10)
    await asyncio.sleep(1.0)  # warm-up
    return await _window(lambda: count[0], seconds, client.close)


async def measure_engine(port: int, symbols: list[str], seconds: float,
                         extra_consumers: bool) -> dict[str, float]:
    engine = Engine(settings(port, symbols))
    last: list[Any] = [None]

    def keep_last(event: Any) -> None:
        last[0] = event

    engine.bus.subscribe(keep_last, name="counter", mode="inline")
    if extra_consumers:
        async def async_model(event: Any) -> None:
            last[0] = event

        engine.bus.subscribe(async_model, name="async", capacity=100_000)
        engine.bus.subscribe(keep_last, name="thread", mode="thread", capacity=100_000)
    await engine.start()
    await asyncio.sleep(1.0)
    result = await _window(lambda: engine.bus.published, seconds, None)
    st = engine.status()
    result["bad_frames"] = st.bad_frames
    result["dropped"] = sum(c.dropped for c in st.consumers)
    await engine.stop(drain_timeout=1.0)
    return result


def measure_pipeline_only(seconds: float) -> dict[str, float]:
    """decode + bus on real recorded frames, no socket: the engine's own ceiling."""
    import gzip

    from engine.bus import Bus
    from engine.feed.decode import FrameDecoder
    from engine.feed.gate import IdGate
    from engine.feed.receiver import Receiver

    rec = ROOT.parent / "shared/realdata/hftbacktest/btcusdt_20240808.gz"
    if not rec.exists():
        return {}
    frames = [line.partition(b" ")[2] for line in gzip.decompress(rec.read_bytes()).splitlines()
              if b'"stream"' in line]
    bus = Bus()
    last: list[Any] = [None]
    bus.subscribe(lambda e: last.__setitem__(0, e), mode="inline")
    receive = Receiver(FrameDecoder(), IdGate(), bus).receive  # the production receive path
    special: list[Any] = []
    batches = [frames[i:i + 32] for i in range(0, len(frames), 32)]
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        for batch in batches:
            receive(batch, 0, 1, special)
            special.clear()
        n += len(frames)
    t1, c1 = time.perf_counter(), time.process_time()
    return {"events": n, "per_s": n / (t1 - t0), "cpu_us_per_event": (c1 - c0) / n * 1e6,
            "cpu_share": (c1 - c0) / (t1 - t0)}


async def _window(counter: Any, seconds: float, closer: Any) -> dict[str, float]:
    n0, t0, c0 = counter(), time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    n1, t1, c1 = counter(), time.perf_counter(), time.process_time()
    if closer is not None:
        closer()
    n = n1 - n0
    return {"events": n, "per_s": n / (t1 - t0), "cpu_us_per_event": (c1 - c0) / max(n, 1) * 1e6,
            "cpu_share": (c1 - c0) / (t1 - t0)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--symbols", default="BTCUSDT")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/bus_throughput.json")
    args = ap.parse_args()
    symbols = [s for s in args.symbols.split(",") if s]
    port = free_port()
    proc = start_exchange(port, ",".join(symbols))
    try:
        rows = {
            "raw receive (limit)": await measure_raw(port, symbols, args.seconds),
            "engine: decode+bus+1 inline": await measure_engine(port, symbols, args.seconds,
                                                                False),
            "engine: +task +thread consumers": await measure_engine(port, symbols,
                                                                    args.seconds, True),
        }
    finally:
        proc.terminate()
        proc.wait(10)
    pipeline = measure_pipeline_only(min(args.seconds, 5.0))
    if pipeline:
        rows["decode+bus only (recorded frames)"] = pipeline
    limit = rows["raw receive (limit)"]["per_s"]
    print(f"\nlocal exchange at max rate, {','.join(symbols)}, {args.seconds:.0f}s windows "
          "(exchange in its own process)\n")
    print(f"{'row':36} {'events/s':>12} {'vs raw':>8} {'CPU µs/event':>13} {'CPU share':>10}")
    for name, r in rows.items():
        print(f"{name:36} {r['per_s']:>12,.0f} {r['per_s'] / limit:>8.2f} "
              f"{r['cpu_us_per_event']:>13.2f} {r['cpu_share']:>10.0%}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))
    print(f"\nresults: {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
