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

* ``--instr a,b,c,d`` counts instructions per message of the suite's engine rows (a)
  decode+bus+counter, (b) + recorder, (c) + local order book, (d) all together, on the
  suite's frames (the recordings plus the aggTrade derived from their trades), in *one*
  valgrind process: per row, a warm-up, a callgrind dump (``--dump-before`` a marker
  call), the measured frames (and the recorder's flush of them, writer thread included),
  another dump. The measured dump alone is divided by its frames, so neither start-up
  nor the warm-up's one-off costs count. bench/suite.py runs it beside its memory row.

Usage: python bench/pipeline.py [--baseline DIR] [--repeat 7] [--callgrind]
       [--callgrind-frames 10000,40000] [--instr a,b,c,d [--instr-frames 2000,8000]]
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


def settings_overrides(storage_dir: str) -> list[tuple[str, Any]]:
    overrides: list[tuple[str, Any]] = [
        ("symbols", ["BTCUSDT"]), ("storage.directory", storage_dir),
        ("streams.depthUpdate.enabled", True), ("streams.depthUpdate.speed_ms", 100),
        ("connection.ws_url", "ws://127.0.0.1:1"), ("connection.rest_url", "http://127.0.0.1:1")]
    for kind in ("kline", "depthPartial", "miniTicker"):
        overrides.append((f"streams.{kind}.enabled", False))
    return overrides


def settings(storage_dir: str) -> Any:
    from engine.config import load_settings

    return load_settings(None, [("storage.enabled", True), *settings_overrides(storage_dir)])


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


MARK = os.getppid  # C function os_getppid: callgrind dumps its counters when it is entered
MARK_SYMBOL = "os_getppid"
INSTR_ROWS = {"a": "engine-a", "b": "engine-b", "c": "engine-c", "d": "engine-d"}


def suite_lines(limit: int) -> list[tuple[int, bytes]]:
    """The first ``limit`` lines of the suite's workload (aggTrade derived, as there)."""
    from bench.suite import with_agg_trades

    raw: list[bytes] = []
    for name in RECORDINGS:
        with gzip.open(REALDATA / name, "rb") as fh:
            for line in fh:
                if line.strip():
                    raw.append(line.rstrip(b"\n"))
                if len(raw) > limit:  # aggTrade lines add to it: enough
                    break
        if len(raw) > limit:
            break
    lines, _ = with_agg_trades(raw)
    out = []
    for line in lines[:limit]:
        ns, _, body = line.partition(b" ")
        out.append((int(ns), body))
    return out


async def instr_worker(rows: list[str], warmup: int, frames: int) -> dict[str, Any]:
    """Under callgrind: each row's warm-up, MARK, its measured frames, MARK."""
    lines = suite_lines(warmup + frames + 64)
    return {INSTR_ROWS[row]: await instr_row(row, lines, warmup, frames) for row in rows}


async def instr_row(row: str, lines: list[tuple[int, bytes]], warmup: int,
                    frames: int) -> dict[str, Any]:
    from engine.config import load_settings
    from engine.engine import Engine

    recorder_on, book_on = row in ("b", "d"), row in ("c", "d")
    with tempfile.TemporaryDirectory(prefix="bench-instr-") as tmp:
        # flushes only where feed() asks for them, not on a wall-clock timer that
        # valgrind's slowdown would fire more often than at full speed (and at random)
        engine = Engine(load_settings(None, [("storage.enabled", recorder_on),
                                             ("storage.flush_interval_s", 300),
                                             ("storage.flush_rows", 1_000_000),
                                             *settings_overrides(tmp)]))
        if not book_on:  # as the suite's rows: diff depth flows, no book kept
            for c in engine.bus.consumers:
                if c.name in ("books", "book-audit"):
                    engine.bus.unsubscribe(c)
        count: list[Any] = [0, None]

        def counter(ev: Any) -> None:  # the suite's consumer work: count + keep the last
            count[0] += 1
            count[1] = ev

        engine.bus.subscribe(counter, name="counter", mode="inline")
        sink, book, decode_depth, recorder = wire(engine)
        if recorder_on:
            await recorder.start(True)
        engine.bus.start()
        pos = 0

        async def feed(n: int) -> int:
            """The next ``n`` data frames, BATCH per read, yielding like a socket."""
            nonlocal pos
            batch: list[bytes] = []
            done = 0
            while done < n and pos < len(lines):
                ns, body = lines[pos]
                pos += 1
                if body.startswith(b'{"lastUpdateId"'):
                    if batch:
                        sink(batch, ns)
                        batch = []
                    book.on_snapshot(decode_depth(body, "BTCUSDT", 5000, ns))
                    continue
                batch.append(body)
                done += 1
                if len(batch) == BATCH:
                    sink(batch, ns)
                    batch = []
                    await asyncio.sleep(0)
            if batch:
                sink(batch, lines[pos - 1][0])
            await asyncio.sleep(0)
            if recorder_on:
                await recorder.close_files()  # the writer thread's share, too
            return done

        await feed(warmup)
        MARK()
        n = await feed(frames)
        MARK()
        await engine.bus.stop(1.0)
        if recorder_on:
            await recorder.stop()
    return {"frames": n, "events": count[0], "synced": book.synced}


def instructions_per_row(rows: list[str], warmup: int, frames: int) -> dict[str, Any]:
    """One valgrind process for every row; the measured dumps are the even ones."""
    with tempfile.TemporaryDirectory(prefix="bench-cg-") as tmp:
        base = Path(tmp) / "cg.out"
        res = run_in(ROOT, ["--instr-worker", ",".join(rows), "--instr-frames",
                            f"{warmup},{frames}"],
                     ["valgrind", "--tool=callgrind", f"--dump-before={MARK_SYMBOL}",
                      f"--callgrind-out-file={base}", "--quiet"])
        dumps = sorted(Path(tmp).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        assert len(dumps) == 2 * len(rows), [p.name for p in dumps]
        for i, row in enumerate(rows):
            text = dumps[2 * i + 1].read_text()
            total = int(next(ln for ln in text.splitlines() if ln.startswith("totals:"))
                        .split()[1])
            r = res[INSTR_ROWS[row]]
            r["instructions"] = total
            r["per_msg"] = total / r["frames"]
    return {"warmup": warmup, "frames": frames, "detail": res,
            "rows": {k: v["per_msg"] for k, v in res.items()}}


def run_in(tree: Path, extra: list[str], valgrind: list[str] | None = None) -> dict[str, Any]:
    cmd = [*(valgrind or []), sys.executable, str(ROOT / "bench/pipeline.py"), "--worker",
           "--tree", str(tree), *extra]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same set/dict orders every run
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=tree, env=env)
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
    ap.add_argument("--instr", default="", metavar="ROWS",
                    help="instructions/msg of the suite's engine rows, e.g. a,b,c,d (prints "
                         "a table and 'INSTR <json>'; nothing else runs)")
    ap.add_argument("--instr-frames", default="2000,8000", metavar="WARMUP,FRAMES")
    ap.add_argument("--instr-worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--frames", type=int, default=None, help=argparse.SUPPRESS)
    ns = ap.parse_args()
    warmup, frames = (int(v) for v in ns.instr_frames.split(","))
    if ns.instr_worker:
        sys.path.insert(0, str(ROOT))
        res = asyncio.run(instr_worker(ns.instr_worker.split(","), warmup, frames))
        print("RESULT " + json.dumps(res), flush=True)
        return
    if ns.instr:
        rows = ns.instr.split(",")
        assert all(r in INSTR_ROWS for r in rows), rows
        t0 = time.perf_counter()
        res = instructions_per_row(rows, warmup, frames)
        res["elapsed_s"] = time.perf_counter() - t0
        print(f"instructions per message (callgrind; {frames:,} frames after {warmup:,} of "
              f"warm-up; {res['elapsed_s']:.0f}s)")
        for key, v in res["rows"].items():
            print(f"  {key:10} {v:>10,.0f}")
        print("INSTR " + json.dumps(res), flush=True)
        return
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
