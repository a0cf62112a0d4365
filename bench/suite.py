"""Benchmark suite: the engine against the raw receive limit and against peer libraries.

Every row runs in its own client process against its own local exchange process
(``python -m engine.exchange``, loopback), so no row inherits another's state. Two
workloads, the same for every row:

  rec   the real hftbacktest recordings (btcusdt_20240808 + _20240809, contiguous ids:
        depth@100ms diffs + bookTicker + trade) replayed with ``--speed 0`` (as fast as the
        exchange can send). The replay starts once the client has subscribed every
        recorded stream (``--replay-wait-all``; cryptofeed has no @trade channel: 5 s
        after its first subscription), so clients that subscribe one stream at a time
        see it whole. The rate is the messages delivered between the first and the
        last one.
  max   the synthetic stream (``--rate max``), measured over a fixed window after warm-up.

Every client subscribes the same four streams (btcusdt@trade, @aggTrade, @bookTicker,
@depth@100ms) and does the same consumer work: count + keep the last event.

Rows: raw receive (engine/feed/websocket.py ``open_ws``, frames discarded), receive + decode
(engine/feed/decode.py), engine (a) bus + counter only, (b) + recorder, (c) + local order book,
(d) all together, then each peer library that runs (bench/peer_worker.py in the separate
venv bench/.venv-peers; ``--peers-setup`` creates it from bench/requirements-peers.txt).
Then latency (receive → consumer) at fixed offered rates, the maximum sustainable rate,
and RSS over a run at 10k msg/s with recording on.

``--baseline DIR`` (an older checkout) also runs the engine rows of that tree, alternating
with this one's on the same exchange in the same run, and prints their ratio.

Usage: python bench/suite.py [--seconds 5] [--memory-seconds 600] [--peers-setup]
       [--no-peers] [--json bench/results/suite.json] [--baseline DIR [--repeat 5]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REALDATA = ROOT.parent / "shared/realdata/hftbacktest"
RECORDINGS = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
SYMBOL = "BTCUSDT"
STREAMS = ("btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms")
PEERS_VENV = ROOT / "bench/.venv-peers"
PEERS_PY = PEERS_VENV / "bin/python"
PEERS = ("python-binance", "cryptofeed", "unicorn-binance-websocket-api", "binance-sdk-spot",
         "ccxt.pro")
ENGINE_ROWS = ("raw", "raw-ws", "decode", "engine-a", "engine-b", "engine-c", "engine-d")
LABELS = {
    "raw": "raw receive (open_ws, discard) [limit]",
    "raw-ws": "raw receive, websockets' parser [before]",
    "decode": "receive + decode (FrameDecoder)",
    "engine-a": "engine (a) decode+bus+counter",
    "engine-b": "engine (b) + recorder",
    "engine-c": "engine (c) + local order book",
    "engine-d": "engine (d) all together",
}
IDLE_END_S = 2.0  # rec workload: the replay is over when nothing arrived for this long
SETTLE_S = 120.0  # memory row: RSS growth is judged from here to the end
POLL_S = 0.01


# ---------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_recording(tmp: Path) -> tuple[Path, int]:
    """Concatenate the two contiguous BTCUSDT days; returns (file, data frames in it)."""
    out = tmp / "btcusdt_20240808-09.gz"
    frames = 0
    with gzip.open(out, "wb", compresslevel=1) as dst:
        for name in RECORDINGS:
            data = gzip.decompress((REALDATA / name).read_bytes())
            frames += sum(1 for line in data.splitlines() if b' {"stream":"' in line)
            dst.write(data if data.endswith(b"\n") else data + b"\n")
    return out, frames


def start_exchange(port: int, workload: str, recording: Path | None,
                   rate: str = "max") -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "engine.exchange", "--port", str(port), "--symbols", SYMBOL]
    if workload == "rec":
        assert recording is not None
        cmd += ["--rate", "0", "--recording", str(recording), "--speed", "0",
                "--replay-wait-all"]
    else:
        cmd += ["--rate", rate]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "local exchange" not in line:
        proc.kill()
        raise RuntimeError(f"exchange did not start: {line!r}")
    return proc


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values.sort()
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6  # ns -> ms


class Meter:
    """Counts events; measures a rec replay (first → last) or a fixed max-rate window.

    A poller samples the count every 10 ms, so both modes cost the consumer nothing
    but ``n += 1`` (the same for the engine and for every peer: see peer_worker.py).
    """

    def __init__(self) -> None:
        self.n = 0
        self.last: Any = None

    def on_event(self, event: Any) -> None:  # the consumer work: count + keep the last
        self.n += 1
        self.last = event

    async def measure(self, workload: str, seconds: float, timeout: float) -> dict[str, Any]:
        clock, cpu = time.perf_counter, time.process_time
        deadline = clock() + timeout
        if workload == "rec":
            while self.n == 0:
                if clock() > deadline:
                    raise RuntimeError("no message arrived")
                await asyncio.sleep(0.001)
            n0, t0, c0 = self.n, clock(), cpu()
            n_last, t_last, c_last = n0, t0, c0
            while True:
                await asyncio.sleep(POLL_S)
                now = clock()
                if self.n != n_last:
                    n_last, t_last, c_last = self.n, now, cpu()
                elif now - t_last > IDLE_END_S or now > deadline:
                    break
            n, dt, dc = n_last, t_last - t0, c_last - c0
            events = n - n0
        else:
            await asyncio.sleep(1.0)  # warm-up
            n0, t0, c0 = self.n, clock(), cpu()
            await asyncio.sleep(seconds)
            n, t1, c1 = self.n, clock(), cpu()
            events, dt, dc = n - n0, t1 - t0, c1 - c0
        return {"events": events, "total": self.n, "seconds": dt,
                "per_s": events / dt if dt > 0 else 0.0,
                "cpu_us": dc / max(events, 1) * 1e6, "cpu_share": dc / dt if dt > 0 else 0.0}


# ---------------------------------------------------------------------------- engine worker


def engine_settings(port: int, storage_dir: str | None, book: bool) -> Any:
    from engine.config import load_settings
    overrides: list[tuple[str, Any]] = [
        ("symbols", [SYMBOL]),
        ("connection.ws_url", f"ws://127.0.0.1:{port}"),
        ("connection.rest_url", f"http://127.0.0.1:{port}"),
        ("storage.enabled", storage_dir is not None),
        ("streams.depthUpdate.enabled", True),
        ("streams.depthUpdate.speed_ms", 100),
    ]
    if storage_dir is not None:
        overrides.append(("storage.directory", storage_dir))
    for kind in ("kline", "depthPartial", "miniTicker"):
        overrides.append((f"streams.{kind}.enabled", False))
    return load_settings(None, overrides)


async def run_engine_worker(row: str, port: int, workload: str, seconds: float,
                            latency: bool, memory_seconds: float) -> dict[str, Any]:
    meter = Meter()
    timeout = 120.0
    if row in ("raw", "raw-ws", "decode"):
        from bench.ws_reference import open_reference
        from engine.feed.decode import FrameDecoder
        from engine.feed.websocket import open_ws
        if row in ("raw", "raw-ws"):
            def sink(frames: list[bytes], recv_ns: int) -> None:
                meter.n += len(frames)
                meter.last = frames[-1]
        else:
            decode = FrameDecoder().decode

            def sink(frames: list[bytes], recv_ns: int) -> None:
                for f in frames:
                    ev = decode(f, recv_ns)
                    if ev is not None:
                        meter.on_event(ev)
        url = f"ws://127.0.0.1:{port}/stream?streams={'/'.join(STREAMS)}"
        client = await (open_reference(url, sink) if row == "raw-ws" else open_ws(url, sink, 10))
        result = await meter.measure(workload, seconds, timeout)
        client.close()
        return result

    from engine.engine import Engine
    recorder = row in ("engine-b", "engine-d")
    book = row in ("engine-c", "engine-d")
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        engine = Engine(engine_settings(port, tmp if recorder else None, book))
        if not book:  # diff depth still flows (same data for every row), no book kept
            for c in engine.bus.consumers:
                if c.name in ("books", "book-audit"):
                    engine.bus.unsubscribe(c)
        engine.bus.subscribe(meter.on_event, name="counter", mode="inline")
        lat_inline: list[int] = []
        lat_task: list[int] = []
        task_consumer = None
        if latency:
            now_ns = time.time_ns
            gc.freeze()

            def inline_lat(ev: Any) -> None:
                lat_inline.append(now_ns() - ev.recv_ns)

            async def task_lat(ev: Any) -> None:
                lat_task.append(now_ns() - ev.recv_ns)

            engine.bus.subscribe(inline_lat, name="lat-inline", mode="inline")
            task_consumer = engine.bus.subscribe(task_lat, name="lat-task", capacity=1_000_000)
        await engine.start()
        if memory_seconds > 0:
            result = await memory_run(meter, memory_seconds)
        else:
            if latency:
                await asyncio.sleep(1.0)
                lat_inline.clear()
                lat_task.clear()
                if task_consumer is not None:
                    task_consumer.max_queued = 0
            result = await meter.measure(workload, seconds, timeout)
        st = engine.status()
        result["bad_frames"] = st.bad_frames
        result["dropped"] = sum(c.dropped for c in st.consumers)
        result["gaps"] = st.gaps
        if book:
            result["books"] = [{"state": b.state, "applied": b.applied, "resyncs": b.resyncs,
                                "gaps": b.gaps} for b in st.books]
        if st.recording is not None:
            result["recorded_rows"] = st.recording.rows_written + st.recording.rows_pending
        if latency:
            result["lat_inline_ms"] = {q: pct(lat_inline, v) for q, v in
                                       (("p50", .5), ("p99", .99), ("p999", .999))}
            result["lat_task_ms"] = {q: pct(lat_task, v) for q, v in
                                     (("p50", .5), ("p99", .99), ("p999", .999))}
            assert task_consumer is not None
            result["task_queue_max"] = task_consumer.max_queued
            result["task_queue_end"] = task_consumer.pending()
        await engine.stop(drain_timeout=2.0)
    return result


async def memory_run(meter: Meter, seconds: float) -> dict[str, Any]:
    warm = min(10.0, max(2.0, seconds / 10))
    await asyncio.sleep(warm)
    samples: list[tuple[float, int]] = []
    n0, t0 = meter.n, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        samples.append((time.perf_counter() - t0, rss_bytes()))
        await asyncio.sleep(1.0)
    samples.append((time.perf_counter() - t0, rss_bytes()))
    start, end = samples[0][1], samples[-1][1]
    # bounded structures (tape, candles, latency windows, recorder buffers, Arrow pools)
    # fill during the first ~2 minutes at 10k msg/s; growth is judged after that
    settle_s = min(SETTLE_S, seconds / 2)
    settled = next(r for t, r in samples if t >= settle_s)
    return {"events": meter.n - n0, "seconds": samples[-1][0], "settle_s": settle_s,
            "rss_settled_mb": settled / 2**20, "growth_after_settle": (end - settled) / settled,
            "per_s": (meter.n - n0) / samples[-1][0], "warmup_s": warm,
            "rss_start_mb": start / 2**20, "rss_end_mb": end / 2**20,
            "rss_max_mb": max(s[1] for s in samples) / 2**20,
            "growth": (end - start) / start,
            "curve_mb": [round(samples[min(len(samples) - 1, i * len(samples) // 10)][1]
                               / 2**20, 1) for i in range(11)]}


def worker_main(ns: argparse.Namespace) -> None:
    result = asyncio.run(run_engine_worker(ns.worker, ns.port, ns.workload, ns.seconds,
                                           ns.latency, ns.memory_seconds))
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- orchestration


def run_row(row: str, workload: str, recording: Path | None, seconds: float,
            rate: str = "max", latency: bool = False, memory_seconds: float = 0.0,
            timeout: float = 150.0, tree: Path = ROOT) -> dict[str, Any]:
    """One client process (engine worker or peer worker) against a fresh exchange.

    ``tree``: the checkout whose engine the worker runs (``--baseline``: an older one;
    the exchange is always this tree's, the same load for both).
    """
    port = free_port()
    ex = start_exchange(port, workload, recording, rate)
    try:
        if row in PEERS:
            cmd = [str(PEERS_PY), str(ROOT / "bench/peer_worker.py"), "--lib", row]
        else:
            cmd = [sys.executable, str(tree / "bench/suite.py"), "--worker", row]
            if latency:
                cmd.append("--latency")
            cmd += ["--memory-seconds", str(memory_seconds)]
        cmd += ["--port", str(port), "--workload", workload, "--seconds", str(seconds)]
        try:
            out = subprocess.run(cmd, cwd=tree, capture_output=True, text=True,
                                 timeout=timeout + memory_seconds)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout + memory_seconds:.0f}s"}
        for line in out.stdout.splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[7:])
        tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)[-400:] or f"exit {out.returncode}"}
    finally:
        stop_process(ex)


def setup_peers() -> str:
    """Create bench/.venv-peers and install the peers; '' on success, else why not."""
    req = ROOT / "bench/requirements-peers.txt"
    stamp = PEERS_VENV / ".installed"
    if stamp.exists() and stamp.stat().st_mtime >= req.stat().st_mtime:
        return ""
    try:
        if not PEERS_PY.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True,
                           timeout=120)
        subprocess.run([str(PEERS_PY), "-m", "pip", "install", "-q", "-r", str(req)],
                       check=True, timeout=480)
    except (subprocess.SubprocessError, OSError) as exc:
        return f"peer venv setup failed: {exc}"
    stamp.touch()
    return ""


def calibrate(recording: Path | None, targets: tuple[int, ...]) -> dict[int, str]:
    """Exchange --rate (ops/s) giving each target msg/s on our four streams (linear fit)."""
    probe = 2000
    r = run_row("raw", "max", recording, 3.0, rate=str(probe))
    per_op = max(r.get("per_s", 0.0), 1.0) / probe
    return {t: f"{t / per_op:.0f}" for t in targets}


def fmt_row(label: str, r: dict[str, Any], raw: float, peak_peer: float) -> str:
    if "error" in r:
        return f"{label:40} {'—':>10}  {r['error'][:120]}"
    v = r["per_s"]
    vs_peer = f"{v / peak_peer:>7.2f}" if peak_peer else f"{'—':>7}"
    vs_raw = f"{v / raw:>7.2f}" if raw else f"{'—':>7}"
    return (f"{label:40} {v:>10,.0f} {vs_raw} {vs_peer} {r['cpu_us']:>7.2f} "
            f"{r['cpu_share']:>6.0%}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="max-rate window per row")
    ap.add_argument("--memory-seconds", type=float, default=600.0,
                    help="duration of the RSS row at 10k msg/s with recording on (0 = skip)")
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers-setup", action="store_true",
                    help="create bench/.venv-peers from bench/requirements-peers.txt if needed")
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/suite.json")
    ap.add_argument("--rows", default=",".join(ENGINE_ROWS),
                    help="comma-separated subset of the engine rows (profiling runs)")
    ap.add_argument("--workloads", default="rec,max", help="rec, max or both ('' = none)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency ladder")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="an older checkout (e.g. `git worktree add /tmp/base <ref>`): its "
                         "engine rows run alternately with this tree's, same exchange, same "
                         "run, and a ratio table is printed")
    ap.add_argument("--repeat", type=int, default=5,
                    help="--baseline: runs of each engine row per tree (medians compared)")
    # worker mode (internal)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workload", default="rec", help=argparse.SUPPRESS)
    ap.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.worker:
        worker_main(ns)
        return
    t_start = time.perf_counter()
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "cpus": os.cpu_count(), "streams": STREAMS}
    peers: list[str] = []
    peer_skip: dict[str, str] = {}
    if not ns.no_peers:
        why = setup_peers() if ns.peers_setup else ("" if PEERS_PY.exists() else
                                                   "bench/.venv-peers missing (--peers-setup)")
        for p in ns.peers.split(","):
            if p not in PEERS:
                raise SystemExit(f"unknown peer {p!r}; known: {', '.join(PEERS)}")
            if why:
                peer_skip[p] = why
            else:
                peers.append(p)
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmpdir:
        recording, n_frames = build_recording(Path(tmpdir))
        results["recording"] = {"files": RECORDINGS, "frames": n_frames}
        tables: dict[str, dict[str, Any]] = {}
        engine_rows = [r for r in ENGINE_ROWS if r in ns.rows.split(",")]
        for workload in [w for w in ns.workloads.split(",") if w]:
            rows: dict[str, Any] = {}
            for row in (*engine_rows, *peers):
                print(f"  {workload:3} {row} ...", file=sys.stderr, flush=True)
                rows[row] = run_row(row, workload, recording, ns.seconds)
            tables[workload] = rows
        results["throughput"] = tables
        if ns.baseline is not None:
            results["baseline"] = compare_with(ns.baseline, engine_rows, recording, ns)
        # latency at fixed offered rates, then the maximum sustainable rate
        targets = (1_000, 10_000, 50_000)
        steps = (75_000, 100_000, 125_000)
        rates = calibrate(recording, (*targets, *steps))
        lat: dict[str, Any] = {}
        for t in () if ns.no_latency else (*targets, *steps):
            print(f"  latency @{t} ...", file=sys.stderr, flush=True)
            lat[str(t)] = run_row("engine-d", "max", recording, ns.latency_seconds,
                                  rate=rates[t], latency=True)
            lat[str(t)]["exchange_rate"] = rates[t]
        results["latency"] = lat
        if ns.memory_seconds > 0:
            print(f"  memory {ns.memory_seconds:.0f}s ...", file=sys.stderr, flush=True)
            results["memory"] = run_row("engine-d", "max", recording, 0.0,
                                        rate=rates[10_000], memory_seconds=ns.memory_seconds)
    results["peer_skipped"] = peer_skip
    results["elapsed_s"] = time.perf_counter() - t_start
    report(results, peers, targets, steps)
    if "baseline" in results:
        report_baseline(results["baseline"])
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {ns.json.relative_to(ROOT) if ns.json.is_relative_to(ROOT) else ns.json}"
          f"  ({results['elapsed_s']:.0f}s)")


def compare_with(baseline: Path, rows: list[str], recording: Path | None,
                 ns: argparse.Namespace) -> dict[str, Any]:
    """Each engine row, this tree and ``baseline`` alternately (``--repeat`` times each, so
    a noisy minute hits both), on the real recordings; medians and their ratio."""
    rows = [r for r in rows if r.startswith("engine")]
    out: dict[str, Any] = {"tree": str(baseline.resolve()), "repeat": ns.repeat, "rows": {}}
    for row in rows:
        runs: dict[str, list[float]] = {"this": [], "baseline": []}
        for i in range(ns.repeat):
            for side, tree in (("this", ROOT), ("baseline", baseline)):
                print(f"  baseline {row} {side} {i + 1}/{ns.repeat} ...", file=sys.stderr,
                      flush=True)
                r = run_row(row, "rec", recording, ns.seconds, tree=tree)
                if "per_s" in r:
                    runs[side].append(r["per_s"])
                else:
                    out["rows"].setdefault(row, {}).setdefault("errors", []).append(
                        f"{side}: {r.get('error', '?')}")
        med = {side: sorted(v)[len(v) // 2] if v else 0.0 for side, v in runs.items()}
        out["rows"].setdefault(row, {}).update(runs=runs, median=med)
    if not ns.no_latency:  # receive → consumer latency of engine (d), both trees
        rates = calibrate(recording, LATENCY_COMPARED)
        for target in LATENCY_COMPARED:
            lat: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
            for i in range(ns.repeat):
                for side, tree in (("this", ROOT), ("baseline", baseline)):
                    print(f"  baseline latency @{target} {side} {i + 1}/{ns.repeat} ...",
                          file=sys.stderr, flush=True)
                    r = run_row("engine-d", "max", recording, ns.latency_seconds,
                                rate=rates[target], latency=True, tree=tree)
                    if "lat_inline_ms" in r:
                        lat[side].append({"inline_p99": r["lat_inline_ms"]["p99"],
                                          "task_p99": r["lat_task_ms"]["p99"],
                                          "per_s": r["per_s"]})
            out.setdefault("latency", {})[str(target)] = lat
    return out


LATENCY_COMPARED = (10_000, 50_000)  # --baseline: offered msg/s of the latency comparison


def report_baseline(b: dict[str, Any]) -> None:
    print(f"\nsame run, alternating, {b['repeat']} runs each on the recordings: this tree vs "
          f"{b['tree']}")
    print(f"{'row':40} {'this msg/s':>11} {'baseline':>11} {'ratio':>6}   runs (this | base)")
    for row, r in b["rows"].items():
        m = r.get("median", {})
        this, base = m.get("this", 0.0), m.get("baseline", 0.0)
        ratio = f"{this / base:6.2f}" if base else f"{'—':>6}"
        spread = " ".join(f"{v / 1e3:.0f}k" for v in r.get("runs", {}).get("this", [])) + \
            " | " + " ".join(f"{v / 1e3:.0f}k" for v in r.get("runs", {}).get("baseline", []))
        print(f"{LABELS[row]:40} {this:>11,.0f} {base:>11,.0f} {ratio}   {spread}")
        for err in r.get("errors", []):
            print(f"  error: {err[:160]}")
    def cell(runs: list[dict[str, float]], key: str) -> str:
        vals = sorted(x[key] for x in runs)
        return f"{vals[len(vals) // 2]:.2f} ({vals[0]:.2f}-{vals[-1]:.2f})" if vals else "—"

    for target, lat in b.get("latency", {}).items():
        print(f"latency @{int(target):,} msg/s, p99 ms median (range): inline this "
              f"{cell(lat['this'], 'inline_p99')} base {cell(lat['baseline'], 'inline_p99')} · "
              f"task this {cell(lat['this'], 'task_p99')} base "
              f"{cell(lat['baseline'], 'task_p99')}")


def report(results: dict[str, Any], peers: list[str], targets: tuple[int, ...],
           steps: tuple[int, ...]) -> None:
    print(f"\nbinance-live benchmark suite — {results['started']}, {results['cpus']} CPUs, "
          "exchange in its own process, loopback")
    print("streams: " + ", ".join(STREAMS))
    titles = {"rec": f"rec: real recordings {'+'.join(RECORDINGS)} "
                     f"({results['recording']['frames']:,} frames) replayed at --speed 0",
              "max": "max: synthetic --rate max stream"}
    for workload, rows in results["throughput"].items():
        raw = rows.get("raw", {}).get("per_s") or 0.0
        ok_peers = [rows[p]["per_s"] for p in peers if "per_s" in rows[p]]
        peak = max(ok_peers) if ok_peers else 0.0
        print(f"\n{titles[workload]}")
        print(f"{'row':40} {'msg/s':>10} {'vs raw':>7} {'vs peer':>7} {'CPU µs':>7} "
              f"{'CPU':>6}")
        for row, r in rows.items():
            print(fmt_row(LABELS.get(row, f"peer: {row}"), r, raw, peak))
        for p in peers:
            r = rows[p]
            if "per_s" in r and r.get("note"):
                print(f"  {p}: {r['note']}")
    for p, why in results["peer_skipped"].items():
        print(f"  not run: {p}: {why}")
    print("\nlatency receive (event.recv_ns) → consumer, engine (d) all together "
          "+ an inline and a task consumer")
    print(f"{'offered':>8} {'exch rate':>9} {'msg/s':>9} {'inline p50/p99/p99.9 ms':>25} "
          f"{'task p50/p99/p99.9 ms':>25} {'q max':>7} {'q end':>6}")
    sustainable = 0.0
    for t in (*targets, *steps):
        if str(t) not in results["latency"]:
            continue
        r = results["latency"][str(t)]
        if "error" in r:
            print(f"{t:>8,} {'':>9} {r['error'][:100]}")
            continue
        li, lt = r["lat_inline_ms"], r["lat_task_ms"]
        print(f"{t:>8,} {r['exchange_rate']:>9} {r['per_s']:>9,.0f} "
              f"{li['p50']:>8.3f}/{li['p99']:.3f}/{li['p999']:.3f}".ljust(55)
              + f"{lt['p50']:>8.3f}/{lt['p99']:.3f}/{lt['p999']:.3f}".ljust(26)
              + f"{r['task_queue_max']:>7} {r['task_queue_end']:>6}")
        if r["task_queue_end"] < 1000 and lt["p99"] < 50 and r.get("dropped", 0) == 0:
            sustainable = max(sustainable, r["per_s"])
    results["max_sustainable_per_s"] = sustainable
    print(f"max sustainable (task-consumer queue not growing, p99 < 50 ms, nothing dropped): "
          f"{sustainable:,.0f} msg/s (bounded by the offered steps and the exchange)")
    mem = results.get("memory")
    if mem:
        if "error" in mem:
            print(f"\nmemory: {mem['error']}")
        else:
            print(f"\nmemory, engine (d) with recording on at ~10k msg/s "
                  f"({mem['per_s']:,.0f} msg/s), {mem['seconds']:.0f}s after "
                  f"{mem['warmup_s']:.0f}s warm-up: RSS {mem['rss_start_mb']:.1f} → "
                  f"{mem['rss_end_mb']:.1f} MiB (max {mem['rss_max_mb']:.1f}), "
                  f"growth {mem['growth']:+.1%}; from {mem['settle_s']:.0f}s "
                  f"({mem['rss_settled_mb']:.1f} MiB) to the end "
                  f"{mem['growth_after_settle']:+.1%}")
            if mem.get("curve_mb"):
                print("  RSS MiB at every tenth of the run: "
                      + " ".join(f"{v:.1f}" for v in mem["curve_mb"]))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
