"""Benchmark suite: the engine against the raw receive limit and against peer libraries.

Every run is one client process against its own local exchange process
(``python -m engine.exchange``, loopback). The throughput workload is the real
hftbacktest recordings (btcusdt_20240808 + _20240809: depth@100ms diffs, bookTicker and
trade; an aggTrade stream is derived from the trades, consecutive trades of one taker at
one price and time making one aggregate, as Binance aggregates them), *looped* by the
exchange with every id shifted so ids stay contiguous from pass to pass
(``--replay-loops 0 --replay-seconds``, engine/exchange/replay.py ``Passes``), sent as
fast as the client takes it (``--speed 0``). A client that keeps a book sees the same book
each pass (the exchange opens every pass with a diff back to the first snapshot).

Each run: first event, ``--warmup`` s, then a ``--seconds`` window (msg/s and process CPU
per message over it); then the client waits until it has received every frame the
exchange reports having sent it. ``--reps`` runs per row, interleaved (rep 1 of every
row, then rep 2 …), so a noisy minute hits every row; the table shows the median and
min–max. A run counts only if the client received exactly what the exchange sent it, no
connection was closed by the exchange (slow consumer 1008 and co.) and, for engine rows,
no gap, drop or resync happened; otherwise its row is flagged ✗, not ranked.

Pairs compare a peer with the engine row that subscribes the same streams and does the
same work: peers without a book with engine (a) on all four streams; cryptofeed (no @trade
channel: aggTrade + bookTicker + depth, keeps a book) and ccxt.pro (watch_trades takes
@trade only: trade + bookTicker + depth, keeps a book) each with engine (c) on their own
mix. Peers run with their library defaults; where we change one (python-binance's queue
size, unicorn's output format, ccxt's trade cache) a second row runs without the change.

Beside the times, instructions per message (callgrind, bench/pipeline.py --instr: the
engine rows (a)–(d) without sockets, noise-free) run while the memory row runs (RSS does
not care about CPU contention). Then latency (receive → consumer) at fixed offered rates
of the synthetic stream (``--rate``), the maximum sustainable rate, and RSS over a run at
10k msg/s with recording on. The synthetic stream is not a throughput workload: the
exchange's order-flow simulation makes ~10^5 msg/s on one core, less than a client
takes, so it would rank the exchange, not the clients.

``--baseline DIR`` (an older checkout) also runs the engine rows (a)–(d) of that tree
(this worker, that tree's ``engine`` package), alternating with this one's, and prints
their ratio.

Usage: python bench/suite.py [--peers-setup] [--no-peers] [--reps 3] [--warmup 1]
       [--seconds 5] [--memory-seconds 90] [--json bench/results/suite.json]
       [--rows KEY,...] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import gzip
import json
import os
import queue
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peer_worker import wait_port  # noqa: E402 - stdlib only, shared with the peers' venv

REALDATA = ROOT.parent / "shared/realdata/hftbacktest"
RECORDINGS = ("btcusdt_20240808.gz", "btcusdt_20240809.gz")
SYMBOL = "BTCUSDT"
TRADE, AGG, BT, DEPTH = ("btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker",
                         "btcusdt@depth@100ms")
MIXES = {"all": (TRADE, AGG, BT, DEPTH), "cryptofeed": (AGG, BT, DEPTH),
         "ccxt": (TRADE, BT, DEPTH)}
MIX_SHORT = {"all": "T+A+B+D", "cryptofeed": "A+B+D", "ccxt": "T+B+D"}
PEERS_VENV = ROOT / "bench/.venv-peers"
PEERS_PY = PEERS_VENV / "bin/python"
REPLAY_MARGIN_S = 5.0  # the replay's own end, after warm-up + window (SIGUSR1 ends it then)
IDLE_END_S = 1.5  # a client done draining: nothing arrived for this long
POLL_S = 0.01
SETTLE_S = 120.0  # memory row: RSS growth is judged from here to the end


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    client: str  # an engine worker row (raw, decode, engine-a..d) or a peer library
    variant: str = ""  # peer_worker.py --variant
    mix: str = "all"
    pair: str = ""  # the engine row a peer is compared with
    book: bool = False

    @property
    def peer(self) -> bool:
        return not self.client.startswith(("raw", "decode", "engine"))


ROWS = (
    Row("raw", "raw receive (open_ws, discard) [limit]", "raw"),
    Row("raw-ws", "raw receive, websockets' parser [before]", "raw-ws"),
    Row("decode", "receive + decode (FrameDecoder)", "decode"),
    Row("engine-a", "engine (a) decode+bus+counter", "engine-a"),
    Row("engine-b", "engine (b) + recorder", "engine-b"),
    Row("engine-c", "engine (c) + local order book", "engine-c", book=True),
    Row("engine-d", "engine (d) all together", "engine-d", book=True),
    Row("engine-c@cryptofeed", "engine (c) on cryptofeed's mix", "engine-c", mix="cryptofeed",
        book=True),
    Row("engine-c@ccxt", "engine (c) on ccxt's mix", "engine-c", mix="ccxt", book=True),
    Row("python-binance", "python-binance [max_queue_size=10^6]", "python-binance", "queue",
        pair="engine-a"),
    Row("python-binance:default", "python-binance [defaults]", "python-binance", "default",
        pair="engine-a"),
    Row("cryptofeed", "cryptofeed [defaults: uvloop]", "cryptofeed", "default",
        mix="cryptofeed", pair="engine-c@cryptofeed", book=True),
    Row("unicorn", "unicorn-binance-websocket-api [dict]", "unicorn-binance-websocket-api",
        "dict", pair="engine-a"),
    Row("unicorn:default", "unicorn-binance-websocket-api [defaults]",
        "unicorn-binance-websocket-api", "default", pair="engine-a"),
    Row("binance-sdk-spot", "binance-sdk-spot [defaults]", "binance-sdk-spot", "default",
        pair="engine-a"),
    Row("ccxt.pro", "ccxt.pro [tradesLimit=10^6]", "ccxt.pro", "trades", mix="ccxt",
        pair="engine-c@ccxt", book=True),
    Row("ccxt.pro:default", "ccxt.pro [defaults]", "ccxt.pro", "default", mix="ccxt",
        pair="engine-c@ccxt", book=True),
)
BY_KEY = {r.key: r for r in ROWS}
# reference rows for profiling rounds, not in the default run: --rows raw-ws,decode,…
DEFAULT_ROWS = tuple(r.key for r in ROWS if r.key not in ("raw-ws", "decode"))
# the order runs go in (each rep): a slow starter (unicorn subscribes ~5 s after it is
# created, binance-sdk-spot 2 s) right after a run that drains long, so its start-up
# overlaps that drain
RUN_ORDER = ("raw", "raw-ws", "decode", "engine-a", "engine-b", "engine-c", "engine-d",
             "engine-c@cryptofeed", "engine-c@ccxt", "ccxt.pro", "unicorn",
             "python-binance", "binance-sdk-spot", "ccxt.pro:default", "unicorn:default",
             "python-binance:default", "cryptofeed")
PEER_LIBS = tuple(dict.fromkeys(r.client for r in ROWS if r.peer))
INSTR_ROWS = ("engine-a", "engine-b", "engine-c", "engine-d")


# ---------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def with_agg_trades(lines: list[bytes]) -> tuple[list[bytes], int]:
    """The recorded lines plus an aggTrade frame right after the last trade of each run
    of trades Binance would aggregate (same price, trade time and taker side)."""
    trades = [(i, json.loads(ln.partition(b" ")[2])["data"]) for i, ln in enumerate(lines)
              if ln.partition(b" ")[2].startswith(b'{"stream":"btcusdt@trade"')]
    after: dict[int, bytes] = {}  # line index -> the aggTrade line that follows it
    agg_id, start = 3_100_000_000, 0
    for j in range(len(trades)):
        t = trades[j][1]
        nxt = trades[j + 1][1] if j + 1 < len(trades) else None
        if nxt is not None and (nxt["p"], nxt["T"], nxt["m"]) == (t["p"], t["T"], t["m"]):
            continue
        group = [g for _, g in trades[start:j + 1]]
        qty = sum(int(g["q"].replace(".", "")) for g in group)  # 8 decimals: exact
        data = (f'{{"e":"aggTrade","E":{t["E"]},"s":"{t["s"]}","a":{agg_id},'
                f'"p":"{t["p"]}","q":"{qty // 10**8}.{qty % 10**8:08d}",'
                f'"f":{group[0]["t"]},"l":{t["t"]},"T":{t["T"]},'
                f'"m":{"true" if t["m"] else "false"},"M":true}}')
        ns = lines[trades[j][0]].partition(b" ")[0]
        after[trades[j][0]] = ns + b' {"stream":"btcusdt@aggTrade","data":' + \
            data.encode() + b"}"
        agg_id += 1
        start = j + 1
    out: list[bytes] = []
    for i, ln in enumerate(lines):
        out.append(ln)
        if i in after:
            out.append(after[i])
    return out, len(after)


def cache_of(recording: Path) -> Path:
    return recording.with_suffix(".passes")


def build_recordings(tmp: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """One recording per stream mix (both days, aggTrade derived; only that mix's streams
    plus the snapshot), so ``--replay-wait-all`` starts once the client has them all."""
    from engine.exchange.replay import load_passes

    lines: list[bytes] = []
    for name in RECORDINGS:
        lines += [ln for ln in gzip.decompress((REALDATA / name).read_bytes()).splitlines()
                  if ln]
    recorded = sum(1 for ln in lines if b' {"stream":"' in ln)
    lines, aggs = with_agg_trades(lines)
    paths: dict[str, Path] = {}
    frames: dict[str, int] = {}
    for mix, streams in MIXES.items():
        keep = tuple(f' {{"stream":"{s}"'.encode() for s in streams)
        path = tmp / f"btcusdt_20240808-09.{mix}.txt"  # not gzipped: every exchange loads it
        n = 0
        with path.open("wb") as dst:
            for ln in lines:
                if b' {"lastUpdateId"' in ln or any(k in ln for k in keep):
                    dst.write(ln + b"\n")
                    n += ln.find(b' {"stream":"') > 0
        paths[mix], frames[mix] = path, n
        # what every exchange of this mix would build again (~1 s of CPU each): once
        load_passes(path, cache_of(path), prepare=True)
    return paths, {"files": RECORDINGS, "recorded_frames": recorded, "agg_trades": aggs,
                   "frames_per_pass": frames}


class Proc:
    """A child process; a thread queues its stdout lines, stderr goes to a temp file."""

    def __init__(self, cmd: list[str], cwd: Path) -> None:
        self.err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - lives with the Proc
        self.p = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.err, text=True, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefixes: tuple[str, ...], timeout: float) -> str | None:
        """The next line starting with one of ``prefixes``; None at EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if line is None:
                self.lines.put(None)
                return None
            self.seen.append(line)
            if line.startswith(prefixes):
                return line

    def send(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            assert self.p.stdin is not None
            self.p.stdin.write(line + "\n")
            self.p.stdin.flush()

    def stop(self, timeout: float = 5.0) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)

    def tail(self) -> str:
        self.err.seek(0)
        text = self.err.read().decode(errors="replace").strip().splitlines()[-3:]
        return " | ".join(text)[-400:] or f"exit {self.p.poll()}"


def exchange_cmd(port: int, recording: Path | None, replay_s: float,
                 rate: str = "0") -> list[str]:
    cmd = [sys.executable, "-m", "engine.exchange", "--port", str(port), "--symbols", SYMBOL,
           "--rate", rate, "--report"]
    if recording is not None:
        cmd += ["--recording", str(recording), "--replay-cache", str(cache_of(recording)),
                "--speed", "0", "--replay-wait-all",
                "--replay-hold", "--replay-loops", "0", "--replay-seconds", f"{replay_s:g}"]
    return cmd


class Run:
    """One run of a row: its exchange and its client, started while the previous run
    drains (the client connects and subscribes; the exchange holds the replay), released
    by :meth:`go` once the previous run's processes are gone."""

    def __init__(self, row: Row, recordings: dict[str, Path] | None, ns: argparse.Namespace, *,
                 tree: Path = ROOT, rate: str = "0", seconds: float | None = None,
                 latency: bool = False, memory_seconds: float = 0.0) -> None:
        self.row, self.tree = row, tree
        self.port = free_port()
        self.seconds = ns.seconds if seconds is None else seconds
        self.synthetic = recordings is None
        self.memory_seconds = memory_seconds
        rec = None if recordings is None else recordings[row.mix]
        self.ex = Proc(exchange_cmd(self.port, rec, ns.warmup + self.seconds + REPLAY_MARGIN_S,
                                    rate), ROOT)
        timing = ["--port", str(self.port), "--warmup", f"{ns.warmup:g}", "--seconds",
                  f"{self.seconds:g}"]
        if row.peer:
            cmd = [str(PEERS_PY), str(ROOT / "bench/peer_worker.py"), "--lib", row.client,
                   "--variant", row.variant, *timing]
        else:
            cmd = [sys.executable, str(ROOT / "bench/suite.py"), "--worker", row.client,
                   "--mix", row.mix, "--tree", str(tree), *timing,
                   "--memory-seconds", f"{memory_seconds:g}"]
            if latency:
                cmd.append("--latency")
            if self.synthetic:
                cmd.append("--synthetic")
        self.client = Proc(cmd, tree)

    def go(self) -> str:
        """Release the replay (the client connects by itself); '' or why not."""
        self.t = {"go": time.perf_counter()}
        if self.ex.expect(("local exchange",), 60) is None:
            return f"exchange did not start: {self.ex.tail()}"
        self.t["exchange_up"] = time.perf_counter()
        if not self.synthetic:
            self.ex.p.send_signal(signal.SIGUSR2)
        return ""

    def finish(self, on_window: Any = None) -> dict[str, Any]:
        """Wait for the result (calling ``on_window`` once the window is over) and check it
        against what the exchange reports; both processes are stopped."""
        try:
            return self._finish(on_window)
        finally:
            self.client.stop()
            self.ex.stop()

    def _finish(self, on_window: Any) -> dict[str, Any]:
        timeout = 60.0 + self.seconds + self.memory_seconds
        line = self.client.expect(("WINDOW", "RESULT"), timeout)
        self.t["window"] = time.perf_counter()
        if line == "WINDOW" and not self.synthetic:
            self.ex.p.send_signal(signal.SIGUSR1)  # the replay ends: what is queued drains
        if on_window is not None:
            on_window()
        if line is None:
            return {"error": f"no result: {self.client.tail()}"}
        if line == "WINDOW":
            if not self.synthetic:
                end = self.ex.expect(("REPLAY-END",), 60)
                self.t["replay_end"] = time.perf_counter()
                if end is not None:
                    sent = sent_counts(json.loads(end.split(" ", 1)[1]))
                    self.client.send(f"END {sent['all']} {sent['data']}")
            line = self.client.expect(("RESULT",), 60)
            if line is None:
                return {"error": f"no result: {self.client.tail()}"}
        result: dict[str, Any] = json.loads(line[7:])
        self.t["result"] = time.perf_counter()
        self.ex.p.send_signal(signal.SIGTERM)
        rep = self.ex.expect(("REPORT",), 10)
        self.t["report"] = time.perf_counter()
        result["timing"] = {k: round(v - self.t["go"], 2) for k, v in self.t.items()}
        if rep is not None:
            report = json.loads(rep[7:])
            result["exchange"] = {k: report[k] for k in ("stats", "replay_passes",
                                                         "replay_wall_s", "replay_cpu_s")}
            result["check"] = check(self.row, result, report, self.synthetic)
        else:
            result["check"] = {"ok": False, "why": "no exchange report"}
        return result


def sent_counts(report: dict[str, Any]) -> dict[str, int]:
    conns = report["connections"]
    total = sum(c["frames_sent"] for c in conns)
    return {"all": total, "data": total - sum(c["replies"] for c in conns)}


def check(row: Row, result: dict[str, Any], report: dict[str, Any],
          synthetic: bool) -> dict[str, Any]:
    """Did the client receive every frame the exchange sent it, and nothing went wrong?"""
    sent = sent_counts(report)
    conns = report["connections"]
    closes = [f"{c['close_code']} {c['close_reason']}".strip() for c in conns
              if c["close_code"] is not None]
    out: dict[str, Any] = {"connections": len(conns), "server_closes": closes,
                           "slow_consumers": report["stats"]["slow_consumers_closed"]}
    why: list[str] = []
    if "error" in result:
        why.append(result["error"][:120])
    for err in result.get("errors", []):
        why.append(str(err)[:120])
    if not synthetic and "frames" in result:
        kind = result.get("frames_kind", "all")
        out.update(sent=sent[kind], received=result["frames"], kind=kind)
        if result["frames"] != sent[kind]:
            why.append(f"received {result['frames']:,} of {sent[kind]:,} frames sent")
    if closes or out["slow_consumers"]:
        why.append("closed by the exchange: " + ", ".join(closes or ["slow consumer"]))
    for key in ("gaps", "dropped", "bad_frames", "resyncs"):
        if result.get(key):
            why.append(f"{key} {result[key]}")
    out["ok"] = not why
    out["why"] = "; ".join(why)
    return out


# ---------------------------------------------------------------------------- workers


class Meter:
    """Counts events; first event, warm-up, then a fixed window (see the module doc).

    A poller samples the count every 10 ms, so measuring costs the consumer nothing but
    ``n += 1`` (the same for the engine and for every peer: see peer_worker.py).
    """

    def __init__(self) -> None:
        self.n = 0
        self.frames = 0  # raw/decode rows: frames received
        self.last: Any = None

    def on_event(self, event: Any) -> None:  # the consumer work: count + keep the last
        self.n += 1
        self.last = event

    async def measure(self, warmup: float, seconds: float) -> dict[str, Any]:
        clock, cpu = time.perf_counter, time.process_time
        deadline = clock() + 60.0  # the replay starts once the previous run is over
        while self.n == 0:
            if clock() > deadline:
                raise RuntimeError("no message arrived within 60 s")
            await asyncio.sleep(0.001)
        await asyncio.sleep(warmup)
        n0, t0, c0 = self.n, clock(), cpu()
        await asyncio.sleep(seconds)
        n1, t1, c1 = self.n, clock(), cpu()
        print("WINDOW", flush=True)
        events, dt, dc = n1 - n0, t1 - t0, c1 - c0
        return {"events": events, "seconds": dt, "per_s": events / dt if dt > 0 else 0.0,
                "cpu_us": dc / max(events, 1) * 1e6, "cpu_share": dc / dt if dt > 0 else 0.0}


async def drain(frames: Any, end: list[int], kind: str) -> float:
    """Wait until ``frames()`` reaches what the exchange sent (``end``: all, data), or
    nothing arrived for IDLE_END_S."""
    clock = time.perf_counter
    t0 = last_t = clock()
    last_n = frames()
    want = 0 if kind == "all" else 1
    while True:
        await asyncio.sleep(POLL_S)
        now, n = clock(), frames()
        if end and n >= end[want]:
            return now - t0
        if n != last_n:
            last_n, last_t = n, now
        elif now - last_t > IDLE_END_S:
            return now - t0


def engine_settings(port: int, storage_dir: str | None, streams: tuple[str, ...]) -> Any:
    from engine.config import load_settings
    overrides: list[tuple[str, Any]] = [
        ("symbols", [SYMBOL]),
        ("connection.ws_url", f"ws://127.0.0.1:{port}"),
        ("connection.rest_url", f"http://127.0.0.1:{port}"),
        ("storage.enabled", storage_dir is not None),
        ("streams.trade.enabled", TRADE in streams),
        ("streams.aggTrade.enabled", AGG in streams),
        ("streams.bookTicker.enabled", BT in streams),
        ("streams.depthUpdate.enabled", DEPTH in streams),
        ("streams.depthUpdate.speed_ms", 100),
    ]
    if storage_dir is not None:
        overrides.append(("storage.directory", storage_dir))
    for kind in ("kline", "depthPartial", "miniTicker"):
        overrides.append((f"streams.{kind}.enabled", False))
    return load_settings(None, overrides)


async def run_engine_worker(ns: argparse.Namespace, port: int) -> dict[str, Any]:
    row, streams = ns.worker, MIXES[ns.mix]
    meter = Meter()
    end: list[int] = []

    def read_end() -> None:  # a daemon thread: nothing waits for it at exit
        line = sys.stdin.readline().split()
        if line and line[0] == "END":
            end.extend(int(v) for v in line[1:3])

    def await_end() -> None:
        threading.Thread(target=read_end, daemon=True).start()

    if row in ("raw", "raw-ws", "decode"):
        from bench.ws_reference import open_reference
        from engine.feed.decode import FrameDecoder
        from engine.feed.websocket import open_ws
        if row in ("raw", "raw-ws"):
            def sink(frames: list[bytes], recv_ns: int) -> None:
                meter.n += len(frames)
                meter.frames += len(frames)
                meter.last = frames[-1]
        else:
            decode = FrameDecoder().decode

            def sink(frames: list[bytes], recv_ns: int) -> None:
                meter.frames += len(frames)
                for f in frames:
                    ev = decode(f, recv_ns)
                    if ev is not None:
                        meter.on_event(ev)
        url = f"ws://127.0.0.1:{port}/stream?streams={'/'.join(streams)}"
        client = await (open_reference(url, sink) if row == "raw-ws" else open_ws(url, sink, 10))
        result = await meter.measure(ns.warmup, ns.seconds)
        if not ns.synthetic:
            await_end()
            result["drain_s"] = await drain(lambda: meter.frames, end, "all")
        client.close()
        result.update(total=meter.n, frames=meter.frames, frames_kind="all")
        return result

    from engine.engine import Engine
    recorder = row in ("engine-b", "engine-d")
    book = row in ("engine-c", "engine-d")
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        engine = Engine(engine_settings(port, tmp if recorder else None, streams))
        if not book:  # diff depth still flows (same data for every row), no book kept
            for c in engine.bus.consumers:
                if c.name in ("books", "book-audit"):
                    engine.bus.unsubscribe(c)
        engine.bus.subscribe(meter.on_event, name="counter", mode="inline")
        lat_inline: list[int] = []
        lat_task: list[int] = []
        task_consumer = None
        if ns.latency:
            now_ns = time.time_ns
            gc.freeze()

            def inline_lat(ev: Any) -> None:
                lat_inline.append(now_ns() - ev.recv_ns)

            async def task_lat(ev: Any) -> None:
                lat_task.append(now_ns() - ev.recv_ns)

            engine.bus.subscribe(inline_lat, name="lat-inline", mode="inline")
            task_consumer = engine.bus.subscribe(task_lat, name="lat-task", capacity=1_000_000)
        await engine.start()
        if ns.memory_seconds > 0:
            result = await memory_run(meter, ns.memory_seconds)
        else:
            if ns.latency:
                await asyncio.sleep(1.0)
                lat_inline.clear()
                lat_task.clear()
                if task_consumer is not None:
                    task_consumer.max_queued = 0
            result = await meter.measure(ns.warmup, ns.seconds)
            if not ns.synthetic:
                await_end()
                stats = engine.live.decoder.stats
                result["drain_s"] = await drain(lambda: stats.frames, end, "all")
        st = engine.status()
        result.update(total=meter.n, frames=st.frames, frames_kind="all",
                      bad_frames=st.bad_frames, gaps=st.gaps,
                      dropped=sum(c.dropped for c in st.consumers))
        if book:
            result["books"] = [{"state": b.state, "applied": b.applied, "resyncs": b.resyncs,
                                "gaps": b.gaps} for b in st.books]
            result["resyncs"] = sum(b.resyncs for b in st.books)
        if st.recording is not None:
            result["recorded_rows"] = st.recording.rows_written + st.recording.rows_pending
        if ns.latency:
            result["lat_inline_ms"] = {q: pct(lat_inline, v) for q, v in
                                       (("p50", .5), ("p99", .99), ("p999", .999))}
            result["lat_task_ms"] = {q: pct(lat_task, v) for q, v in
                                     (("p50", .5), ("p99", .99), ("p999", .999))}
            assert task_consumer is not None
            result["task_queue_max"] = task_consumer.max_queued
            result["task_queue_end"] = task_consumer.pending()
        # the result first: suite.py ends this process once it has it (nothing of the
        # engine's shutdown is measured, and the next run need not wait for it)
        print("RESULT " + json.dumps(result), flush=True)
        await engine.stop(drain_timeout=2.0)
    return result


def pct(values: list[int], q: float) -> float:
    if not values:
        return float("nan")
    values.sort()
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6  # ns -> ms


async def memory_run(meter: Meter, seconds: float) -> dict[str, Any]:
    warm = min(10.0, max(2.0, seconds / 10))
    await asyncio.sleep(warm)
    samples: list[tuple[float, int]] = []
    n0, t0 = meter.n, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        samples.append((time.perf_counter() - t0, rss_bytes()))
        await asyncio.sleep(1.0)
    samples.append((time.perf_counter() - t0, rss_bytes()))
    print("WINDOW", flush=True)
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
    if ns.tree.resolve() != ROOT:  # --baseline: that tree's engine package
        sys.path.insert(0, str(ns.tree.resolve()))
    import engine.engine  # noqa: F401 - that tree's, checked below

    if ns.tree.resolve() != ROOT:
        assert Path(engine.__file__).resolve().is_relative_to(ns.tree.resolve()), \
            engine.__file__
    try:
        wait_port(ns.port)
        result = asyncio.run(run_engine_worker(ns, ns.port))
        if ns.worker.startswith("engine"):
            return  # printed before the engine stopped
    except Exception as exc:  # noqa: BLE001 - reported in the table
        result = {"error": f"{type(exc).__name__}: {exc}"[:400]}
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- orchestration


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


def run_sequence(plan: list[tuple[dict[str, Any], Any]]) -> list[dict[str, Any]]:
    """Run ``plan`` ((tags, Run factory) pairs) in order; each next run is started while the
    current one drains (after its window), so start-up costs no measured time."""
    out: list[dict[str, Any]] = []
    nxt: Run | None = plan[0][1]() if plan else None
    for i, (tags, _factory) in enumerate(plan):
        run = nxt
        assert run is not None
        nxt = None

        def start_next(i: int = i) -> None:
            nonlocal nxt
            if i + 1 < len(plan) and nxt is None:
                nxt = plan[i + 1][1]()

        print(f"  {tags['label']} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        why = run.go()
        if why:
            start_next()
            run.client.stop()
            run.ex.stop()
            result: dict[str, Any] = {"error": why, "check": {"ok": False, "why": why}}
        else:
            result = run.finish(start_next)
        start_next()
        result.update({k: v for k, v in tags.items() if k != "label"},
                      wall_s=time.perf_counter() - t0)
        out.append(result)
    return out


def run_single(row: Row, ns: argparse.Namespace, rate: str, seconds: float,
               latency: bool = False, memory_seconds: float = 0.0) -> dict[str, Any]:
    """One run on the synthetic stream (calibration, memory)."""
    return run_sequence([({"label": row.key}, lambda: Run(
        row, None, ns, rate=rate, seconds=seconds, latency=latency,
        memory_seconds=memory_seconds))])[0]


def calibrate(ns: argparse.Namespace, targets: tuple[int, ...]) -> dict[int, str]:
    """Exchange --rate (ops/s) giving each target msg/s on our four streams (linear fit)."""
    probe = 2000
    r = run_single(BY_KEY["raw"], ns, str(probe), 2.0)
    per_op = max(r.get("per_s", 0.0), 1.0) / probe
    return {t: f"{t / per_op:.0f}" for t in targets}


def summarize(runs: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Per row: rates of the runs, median, min, max, CPU, checks."""
    rows: dict[str, Any] = {}
    for key in keys:
        mine = [r for r in runs if r["row"] == key and r["tree"] == str(ROOT)]
        rates = [r["per_s"] for r in mine if "per_s" in r]
        cpu = [r["cpu_us"] for r in mine if "cpu_us" in r]
        busy = [r["exchange"]["replay_cpu_s"] / r["exchange"]["replay_wall_s"] for r in mine
                if r.get("exchange", {}).get("replay_wall_s")]
        ok = [r.get("check", {}).get("ok", False) for r in mine]
        rows[key] = {
            "runs": [{k: v for k, v in r.items() if k not in ("row", "tree")} for r in mine],
            "rates": rates, "median": statistics.median(rates) if rates else 0.0,
            "min": min(rates, default=0.0), "max": max(rates, default=0.0),
            "cpu_us": statistics.median(cpu) if cpu else 0.0,
            "exchange_busy": statistics.median(busy) if busy else 0.0,
            "client_cpu": statistics.median([r["cpu_share"] for r in mine if "cpu_share" in r]
                                            or [0.0]),
            "ok_runs": sum(ok), "n_runs": len(mine), "ok": bool(mine) and all(ok),
            "why": "; ".join(dict.fromkeys(r["check"]["why"] for r in mine
                                           if r.get("check", {}).get("why"))),
            "note": next((r["note"] for r in mine if r.get("note")), ""),
            "versions": next((r["versions"] for r in mine if r.get("versions")), {}),
        }
    return rows


def pairs(rows: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """engine / peer per pair: ratio of the medians, and the range of the per-rep ratios."""
    out = []
    for key, r in rows.items():
        row = BY_KEY[key]
        if not row.pair or row.pair not in rows:
            continue
        eng = rows[row.pair]
        per_rep = []
        for rep_run in runs:
            if rep_run["row"] != key or "per_s" not in rep_run or not rep_run["per_s"]:
                continue
            mate = next((x for x in runs if x["row"] == row.pair and x["rep"] == rep_run["rep"]
                         and "per_s" in x and x["tree"] == str(ROOT)), None)
            if mate is not None:
                per_rep.append(mate["per_s"] / rep_run["per_s"])
        out.append({"peer": key, "engine": row.pair, "mix": row.mix, "book": row.book,
                    "ratio": eng["median"] / r["median"] if r["median"] else 0.0,
                    "ratio_min": min(per_rep, default=0.0),
                    "ratio_max": max(per_rep, default=0.0),
                    "ok": r["ok"] and eng["ok"]})
    return out


def start_instr(ns: argparse.Namespace) -> subprocess.Popen[str] | None:
    if ns.no_callgrind:
        return None
    cmd = [sys.executable, str(ROOT / "bench/pipeline.py"), "--instr", ",".join(
        r.split("-")[1] for r in INSTR_ROWS)]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish_instr(proc: subprocess.Popen[str] | None) -> dict[str, Any]:
    if proc is None:
        return {}
    out, err = proc.communicate(timeout=900)
    for line in out.splitlines():
        if line.startswith("INSTR "):
            return dict(json.loads(line[6:]))
    return {"error": (err or out).strip()[-300:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds after the first event")
    ap.add_argument("--seconds", type=float, default=5.0, help="measurement window per run")
    ap.add_argument("--reps", type=int, default=3, help="runs per row (interleaved)")
    ap.add_argument("--memory-seconds", type=float, default=None,
                    help="duration of the RSS row at 10k msg/s with recording on (0 = skip; "
                         "default 90)")
    ap.add_argument("--latency-seconds", type=float, default=3.0)
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--peers-setup", action="store_true",
                    help="create bench/.venv-peers from bench/requirements-peers.txt if needed")
    ap.add_argument("--peers", default=",".join(PEER_LIBS), help="comma-separated subset")
    ap.add_argument("--rows", default="", help="comma-separated row keys (default: all "
                    "but decode)")
    ap.add_argument("--no-throughput", action="store_true",
                    help="skip the throughput rows (e.g. a long --memory-seconds run alone)")
    ap.add_argument("--no-latency", action="store_true", help="skip the latency ladder")
    ap.add_argument("--no-callgrind", action="store_true", help="skip instructions/msg")
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/suite.json")
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="an older checkout: its engine rows (a)-(d) run alternately with "
                         "this tree's, same exchange, same run; a ratio table is printed")
    # worker mode (internal)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--mix", default="all", help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, default=ROOT, help=argparse.SUPPRESS)
    ap.add_argument("--latency", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--synthetic", action="store_true", help=argparse.SUPPRESS)
    ns = ap.parse_args()
    if ns.memory_seconds is None:  # a worker measures memory only when told to
        ns.memory_seconds = 0.0 if ns.worker else 90.0
    if ns.worker:
        worker_main(ns)
        return
    t_start = time.perf_counter()
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                               "cpus": os.cpu_count(), "load_before": os.getloadavg(),
                               "warmup_s": ns.warmup, "window_s": ns.seconds,
                               "reps": ns.reps, "mixes": MIXES}
    keys = [] if ns.no_throughput else [
        k for k in (ns.rows.split(",") if ns.rows else DEFAULT_ROWS) if k]
    for k in keys:
        if k not in BY_KEY:
            raise SystemExit(f"unknown row {k!r}; known: {', '.join(BY_KEY)}")
    peer_skip: dict[str, str] = {}
    wanted = set(ns.peers.split(","))
    why = ""
    if not ns.no_peers:
        why = setup_peers() if ns.peers_setup else ("" if PEERS_PY.exists() else
                                                   "bench/.venv-peers missing (--peers-setup)")
    selected = []
    for k in keys:
        row = BY_KEY[k]
        if row.peer and (ns.no_peers or row.client not in wanted):
            continue
        if row.peer and why:
            peer_skip[k] = why
            continue
        selected.append(row)
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as tmpdir:
        recordings, info = build_recordings(Path(tmpdir))
        results["recording"] = info
        plan: list[tuple[dict[str, Any], Any]] = []
        for rep in range(1, ns.reps + 1):
            for row in sorted(selected, key=lambda r: RUN_ORDER.index(r.key)):
                trees = [ROOT]
                if ns.baseline is not None and row.key in INSTR_ROWS:
                    trees.append(ns.baseline.resolve())
                for tree in trees:
                    tags = {"label": f"{rep}/{ns.reps} {row.key}"
                                     f"{'' if tree == ROOT else ' (baseline)'}",
                            "row": row.key, "rep": rep, "tree": str(tree)}
                    plan.append((tags, lambda row=row, tree=tree: Run(row, recordings, ns,
                                                                      tree=tree)))
        runs = run_sequence(plan)
    results["throughput"] = summarize(runs, [r.key for r in selected])
    results["pairs"] = pairs(results["throughput"], runs)
    if ns.baseline is not None:
        results["baseline"] = baseline_table(runs, ns.baseline.resolve())
    # latency at fixed offered rates of the synthetic stream, then the sustainable rate
    targets = (1_000, 10_000, 50_000)
    steps = (25_000, 100_000)  # for the sustainable rate, with the targets
    lat: dict[str, Any] = {}
    rates: dict[int, str] = {}
    if not ns.no_latency or ns.memory_seconds > 0:
        rates = calibrate(ns, (*targets, *steps))
    lat_plan = [({"label": f"latency @{t}", "offered": t, "exchange_rate": rates[t]},
                 lambda t=t: Run(BY_KEY["engine-d"], None, ns, rate=rates[t],
                                 seconds=ns.latency_seconds, latency=True))
                for t in (() if ns.no_latency else sorted({*targets, *steps}))]
    for r in run_sequence(lat_plan):
        lat[str(r["offered"])] = r
    results["latency"] = lat
    # instructions/msg under callgrind, beside the memory row (RSS is blind to CPU load)
    instr_proc = start_instr(ns)
    if ns.memory_seconds > 0:
        print(f"  memory {ns.memory_seconds:.0f}s{' (+ callgrind)' if instr_proc else ''} ...",
              file=sys.stderr, flush=True)
        results["memory"] = run_single(BY_KEY["engine-d"], ns, rates[10_000], 0.0,
                                       memory_seconds=ns.memory_seconds)
    elif instr_proc is not None:
        print("  callgrind ...", file=sys.stderr, flush=True)
    results["instructions"] = finish_instr(instr_proc)
    results["peer_skipped"] = peer_skip
    results["load_after"] = os.getloadavg()
    results["elapsed_s"] = time.perf_counter() - t_start
    report(results, targets, steps)
    ns.json.parent.mkdir(parents=True, exist_ok=True)
    ns.json.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nresults: {ns.json.relative_to(ROOT) if ns.json.is_relative_to(ROOT) else ns.json}"
          f"  ({results['elapsed_s']:.0f}s)")


def baseline_table(runs: list[dict[str, Any]], tree: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"tree": str(tree), "rows": {}}
    for key in INSTR_ROWS:
        this = [r["per_s"] for r in runs if r["row"] == key and r["tree"] == str(ROOT)
                and "per_s" in r]
        base = [r["per_s"] for r in runs if r["row"] == key and r["tree"] == str(tree)
                and "per_s" in r]
        if this or base:
            out["rows"][key] = {"this": this, "baseline": base,
                                "median": {"this": statistics.median(this) if this else 0.0,
                                           "baseline": statistics.median(base) if base
                                           else 0.0}}
    return out


def span(r: dict[str, Any]) -> str:
    if not r["rates"]:
        return "—"
    return f"{r['median']:>9,.0f} [{r['min'] / 1e3:,.0f}k–{r['max'] / 1e3:,.0f}k]"


def report(results: dict[str, Any], targets: tuple[int, ...], steps: tuple[int, ...]) -> None:
    info = results["recording"]
    print(f"\nbinance-live benchmark suite — {results['started']}, {results['cpus']} CPUs "
          f"(load {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} "
          "after), every run: own exchange process + own client process, loopback")
    print(f"workload: real recordings {'+'.join(info['files'])} ({info['recorded_frames']:,} "
          f"frames + {info['agg_trades']:,} aggTrade derived from the trades), looped by the "
          "exchange with ids shifted (contiguous), --speed 0")
    print(f"each run: {results['warmup_s']:g} s warm-up, {results['window_s']:g} s window; "
          f"{results['reps']} runs per row, interleaved; msg/s median [min–max]")
    for line in (
            "mix: T trade, A aggTrade, B bookTicker, D depth@100ms; +book: keeps a local book",
            "CPU µs: the client's process CPU per message over the window",
            "cli / exch: CPU share of the client (window) and of the exchange (while sending);",
            "  neither near 100 %: something else had the cores",
            "recv=sent: runs in which the client got exactly the frames the exchange reports",
            "  sending it, the exchange closed nothing (slow consumer …) and an engine saw no",
            "  gap, drop or resync (✗: flagged, not ranked)",
            "instr/msg: callgrind, the same row without sockets (see below)"):
        print(line)
    instr = results.get("instructions", {}).get("rows", {})
    th = results["throughput"]
    raw = th.get("raw", {}).get("median") or 0.0
    print(f"\n{'row':46} {'mix':12} {'msg/s median [min–max]':>27} {'vs raw':>6} "
          f"{'CPU µs':>6} {'cli':>4} {'exch':>4} {'recv=sent':>9} {'instr/msg':>9}")
    for key, r in th.items():
        row = BY_KEY[key]
        mix = MIX_SHORT[row.mix] + ("+book" if row.book else "")
        flag = ("✓ " if r["ok"] else "✗ ") + f"{r['ok_runs']}/{r['n_runs']}"
        ins = instr.get(row.client) if row.mix == "all" else None
        print(f"{('peer: ' if row.peer else '') + row.label:46} {mix:12} {span(r):>27} "
              f"{r['median'] / raw if raw else 0:>6.2f} {r['cpu_us']:>6.2f} "
              f"{r['client_cpu']:>4.0%} {r['exchange_busy']:>4.0%} {flag:>9} "
              f"{f'{ins:,.0f}' if ins else '—':>9}")
    for key, r in th.items():
        if not r["ok"]:
            print(f"  ✗ {key}: {r['why'][:300]}")
    print("\npairs (same streams, same work, same run): engine / peer, ratio of the medians "
          "[min–max of the per-rep ratios]")
    for p in results["pairs"]:
        eng, peer = BY_KEY[p["engine"]], BY_KEY[p["peer"]]
        mix = MIX_SHORT[peer.mix] + (", both keep a book" if peer.book else ", no book")
        flag = "" if p["ok"] else "  ✗ flagged: not ranked"
        print(f"  {eng.label.split(' on ')[0][:10]} / {peer.label:40} {mix:23} "
              f"{p['ratio']:5.1f}× [{p['ratio_min']:.1f}–{p['ratio_max']:.1f}]{flag}")
    notes = {k: r["note"] for k, r in th.items() if r.get("note")}
    for key, note in notes.items():
        print(f"  {key}: {note}")
    versions = next((r["versions"] for r in th.values() if r.get("versions")), {})
    if versions:
        print("  peer versions (bench/.venv-peers): "
              + ", ".join(f"{k} {v}" for k, v in versions.items()))
    for p, why in results["peer_skipped"].items():
        print(f"  not run: {p}: {why}")
    if instr:
        ins = results["instructions"]
        print(f"\ninstructions per message (callgrind, bench/pipeline.py --instr: "
              f"{ins['frames']:,} recorded frames after {ins['warmup']:,} of warm-up through "
              "the receive path and the row's consumers, no sockets, every thread): "
              + ", ".join(f"({k.split('-')[1]}) {v:,.0f}" for k, v in instr.items()))
    elif results.get("instructions", {}).get("error"):
        print(f"\ninstructions per message: {results['instructions']['error']}")
    if "baseline" in results:
        b = results["baseline"]
        print(f"\nsame run, alternating: this tree vs {b['tree']} (msg/s medians)")
        for key, r in b["rows"].items():
            m = r["median"]
            ratio = m["this"] / m["baseline"] if m["baseline"] else 0.0
            print(f"  {BY_KEY[key].label:34} {m['this']:>10,.0f} {m['baseline']:>10,.0f} "
                  f"{ratio:6.2f}")
    print("\nlatency receive (event.recv_ns) → consumer, engine (d) all together "
          "+ an inline and a task consumer, synthetic stream at fixed offered rates")
    print(f"{'offered':>8} {'exch rate':>9} {'msg/s':>9} {'inline p50/p99/p99.9 ms':>25} "
          f"{'task p50/p99/p99.9 ms':>25} {'q max':>7} {'q end':>6}")
    sustainable = 0.0
    for t in sorted({*targets, *steps}):
        if str(t) not in results["latency"]:
            continue
        r = results["latency"][str(t)]
        if "error" in r:
            print(f"{t:>8,} {'':>9} {r['error'][:100]}")
            continue
        li, lt = r["lat_inline_ms"], r["lat_task_ms"]
        ok = r.get("check", {}).get("ok", True)
        print(f"{t:>8,} {r['exchange_rate']:>9} {r['per_s']:>9,.0f} "
              f"{li['p50']:>8.3f}/{li['p99']:.3f}/{li['p999']:.3f}".ljust(55)
              + f"{lt['p50']:>8.3f}/{lt['p99']:.3f}/{lt['p999']:.3f}".ljust(26)
              + f"{r['task_queue_max']:>7} {r['task_queue_end']:>6}"
              + ("" if ok else f"  ✗ {r['check']['why'][:60]}"))
        if (ok and r["task_queue_end"] < 1000 and lt["p99"] < 50
                and r.get("dropped", 0) == 0):
            sustainable = max(sustainable, r["per_s"])
    results["max_sustainable_per_s"] = sustainable
    print(f"max sustainable (task-consumer queue not growing, p99 < 50 ms, nothing dropped, "
          f"not closed by the exchange): "
          f"{sustainable:,.0f} msg/s (bounded by the offered steps and the exchange)")
    mem = results.get("memory")
    if mem:
        if "error" in mem:
            print(f"\nmemory: {mem['error']}")
        else:
            judged = (f"from {mem['settle_s']:.0f}s ({mem['rss_settled_mb']:.1f} MiB) to the "
                      f"end {mem['growth_after_settle']:+.1%}" if mem["seconds"] >= 2 * SETTLE_S
                      else f"too short to judge growth: the bounded structures fill for "
                           f"~{SETTLE_S / 60:.0f} min at this rate (--memory-seconds 600)")
            print(f"\nmemory, engine (d) with recording on at ~10k msg/s "
                  f"({mem['per_s']:,.0f} msg/s), {mem['seconds']:.0f}s after "
                  f"{mem['warmup_s']:.0f}s warm-up: RSS {mem['rss_start_mb']:.1f} → "
                  f"{mem['rss_end_mb']:.1f} MiB (max {mem['rss_max_mb']:.1f}), "
                  f"growth {mem['growth']:+.1%}; {judged}")
            if mem.get("curve_mb"):
                print("  RSS MiB at every tenth of the run: "
                      + " ".join(f"{v:.1f}" for v in mem["curve_mb"]))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
