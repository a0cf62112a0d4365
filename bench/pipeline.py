"""Engine (d) without sockets: recorded frames through the production receive path and
every consumer (gate, bus, market view, health, local book, recorder), in-process.

Why: on a noisy 2-core VM, socket rows of ``bench/suite.py`` vary by ±30 % run to run.
Here the same 99k real frames go through exactly the code a connection runs, so what is
measured is the engine's own cost per message:

* ``--baseline DIR`` runs an older checkout's engine on the same frames, alternating with
  this tree's, ``--repeat`` times each (the best of each side is compared: noise only
  ever adds time);
* ``--callgrind`` counts instructions instead (valgrind): repeatable to a fraction of a
  percent whatever else the machine is doing. Two runs of different lengths per tree
  give the slope, instructions per message, without startup or one-off costs (the first
  file opened, the first Arrow kernels).

Usage: python bench/pipeline.py [--baseline DIR] [--repeat 7] [--callgrind]
       [--callgrind-frames 10000,40000]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REALDATA = ROOT.parent / "shared/realdata/hftbacktest"
RECORDINGS = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
BATCH = 32  # frames per "socket read"


def load_lines(limit: int | None) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for name in RECORDINGS:
        for line in gzip.decompress((REALDATA / name).read_bytes()).splitlines():
            ns, _, body = line.partition(b" ")
            if body:
                out.append((int(ns), body))
    return out if limit is None else out[:limit]


def settings(storage_dir: str) -> Any:
    from engine.config import load_settings

    overrides: list[tuple[str, Any]] = [
        ("symbols", ["BTCUSDT"]), ("storage.enabled", True), ("storage.directory", storage_dir),
        ("streams.depthUpdate.enabled", True), ("streams.depthUpdate.speed_ms", 100),
        ("connection.ws_url", "ws://127.0.0.1:1"), ("connection.rest_url", "http://127.0.0.1:1")]
    for kind in ("kline", "depthPartial", "miniTicker"):
        overrides.append((f"streams.{kind}.enabled", False))
    return load_settings(None, overrides)


def wire(engine: Any) -> tuple[Any, Any, Any, Any]:
    """(receive(frames, recv_ns), the BTCUSDT book, decode a snapshot, the recorder) for
    this tree's engine, or an older tree's (before engine/feed/ and engine/source/)."""
    if hasattr(engine, "manager"):  # an older tree (asking for a module it lacks would
        # fall through to this tree's editable install and mix the two)
        from engine.decode import decode_snapshot
        from engine.manager import Shard

        sink = engine.manager.make_sink(Shard(engine.manager, 0))
        return sink, engine.book_keeper.books["BTCUSDT"], decode_snapshot, engine.recorder
    from engine.binance.rest_rows import decode_depth

    live = engine.live
    receive = live.receiver.receive
    special: list[Any] = []

    def sink(frames: list[bytes], recv_ns: int) -> None:
        receive(frames, recv_ns, 1, special)
        special.clear()

    return sink, live.book_keeper.books["BTCUSDT"], decode_depth, live.recorder


async def run_worker(frames: int | None) -> dict[str, Any]:
    from engine.engine import Engine

    lines = load_lines(frames)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        engine = Engine(settings(tmp))
        sink, book, decode_depth, recorder = wire(engine)
        await recorder.start(True)
        engine.bus.start()
        batch: list[bytes] = []
        n = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for ns, body in lines:
            if body.startswith(b'{"lastUpdateId"'):  # the REST snapshot, when it was taken
                if batch:
                    sink(batch, ns)
                    batch = []
                book.on_snapshot(decode_depth(body, "BTCUSDT", 5000, ns))
                continue
            batch.append(body)
            n += 1
            if len(batch) == BATCH:
                sink(batch, ns)
                batch = []
        if batch:
            sink(batch, lines[-1][0])
        await recorder.close_files()  # the writer thread's share of the work, too
        t1, c1 = time.perf_counter(), time.process_time()
        rows = recorder.status().rows_written
        await engine.bus.stop(1.0)
        await recorder.stop()
    return {"frames": n, "seconds": t1 - t0, "cpu_s": c1 - c0,
            "cpu_us": (c1 - c0) / max(n, 1) * 1e6, "per_s": n / (t1 - t0) if t1 > t0 else 0,
            "rows": rows, "synced": book.synced, "applied": book.applied}


def run_in(tree: Path, extra: list[str], valgrind: list[str] | None = None) -> dict[str, Any]:
    cmd = [*(valgrind or []), sys.executable, str(ROOT / "bench/pipeline.py"), "--worker",
           "--tree", str(tree), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=tree)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]))
    raise SystemExit(f"worker in {tree} failed: {(out.stderr or out.stdout)[-800:]}")


def instructions(tree: Path, frames: int, tmp: Path) -> int:
    """Instructions of a worker run (all threads), from callgrind's summary."""
    out = tmp / f"cg.{os.getpid()}.{frames}.{tree.name}"
    run_in(tree, ["--frames", str(frames)],
           ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--quiet"])
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", type=Path, metavar="DIR")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--callgrind", action="store_true")
    ap.add_argument("--callgrind-frames", default="10000,40000",
                    help="the two run lengths the slope is taken between")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        sys.path.insert(0, str(ns.tree))  # that tree's engine
        import engine

        assert Path(engine.__file__).resolve().is_relative_to(ns.tree.resolve()), engine.__file__
        print("RESULT " + json.dumps(asyncio.run(run_worker(ns.frames))), flush=True)
        return
    trees = {"this": ROOT, **({"baseline": ns.baseline.resolve()} if ns.baseline else {})}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in trees}
    for i in range(ns.repeat):
        for side, tree in trees.items():
            print(f"  {side} {i + 1}/{ns.repeat} ...", file=sys.stderr, flush=True)
            runs[side].append(run_in(tree, []))
    print(f"\nengine (d) without sockets: {runs['this'][0]['frames']:,} recorded frames through "
          f"the receive path and every consumer, best of {ns.repeat}")
    print(f"{'tree':10} {'msg/s':>10} {'CPU µs/msg':>11}   all runs (CPU µs/msg)")
    best = {}
    for side, rs in runs.items():
        b = min(rs, key=lambda r: r["cpu_us"])
        best[side] = b
        every = " ".join(f"{r['cpu_us']:.2f}" for r in rs)
        print(f"{side:10} {b['per_s']:>10,.0f} {b['cpu_us']:>11.2f}   {every}")
        assert all(r["synced"] and r["rows"] > 0 for r in rs), rs
    if "baseline" in best:
        print(f"ratio this/baseline, CPU per message: "
              f"{best['this']['cpu_us'] / best['baseline']['cpu_us']:.3f}")
    if ns.callgrind:
        with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
            short, long = (int(v) for v in ns.callgrind_frames.split(","))
            print(f"\ninstructions per message (callgrind: the slope between runs of "
                  f"{short:,} and {long:,} frames, every thread counted)")
            per: dict[str, float] = {}
            for side, tree in trees.items():
                a = instructions(tree, short, Path(tmp))
                b = instructions(tree, long, Path(tmp))
                per[side] = (b - a) / (long - short)
                print(f"{side:10} {per[side]:>12,.0f} instructions/msg")
            if "baseline" in per:
                print(f"ratio this/baseline: {per['this'] / per['baseline']:.3f}")


if __name__ == "__main__":
    main()
