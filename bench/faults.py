"""Fault matrix: what a real ``binance-live --no-ui`` recorder loses under each fault.

For every row a fresh local exchange (in this process, ``record_sent=True``) and a real
``binance-live --no-ui --depth-update`` subprocess recording to a temporary directory
(flush every 0.2 s, fast reconnect settings) are started; once data flows the fault is
applied; then the order flow is paused, the feed drained, the process stopped with
SIGINT and what the exchange *produced* (the market's trade / aggTrade / diff-depth ids
over the run window, not only what it sent on the socket) is compared with what was
*recorded* (the Parquet dataset, sorted by ``recv_time, seq``) and with the gap ledger
(``_ledger``, ``what=gap``):

  produced     ids the exchange's market created from the first one sent to the process
               until the stop (trade ids; the aggTrade and depth U..u columns in JSON)
  lost         produced ids never recorded, after REST backfill (t/a/d: trade, aggTrade,
               diff-depth ids; depth cannot be backfilled: the book resyncs instead)
  backfill     rows recorded with ``backfilled=true`` (fetched from REST after a gap)
  sent,unrec   ids the exchange *did* write to the socket that the socket path never
               recorded: gone in flight with a dropped TCP connection, or received but
               never written (kill -9); the REST backfill may still have filled them
               (bookTicker and partial depth, which have no contiguous ids, are compared
               frame by frame in the JSON: ``u`` / ``lastUpdateId`` sent on any
               connection vs recorded, see ``compare_frames``)
  bt/pd        bookTicker / partial-depth frames sent on some connection and never
               recorded (``+Nx``: recorded more than once)
  dup          rows recorded more than once (trade + aggTrade + depth)
  ledger       lost id ranges with a gap row naming exactly their first id
               (``first_missing``, ``last_good`` = first - 1) / all lost ranges; ``cN``
               gap rows closed later by a ``backfill`` or ``gap_filled`` row; ``+N f``
               gap rows that name no missing range and were never closed (false);
               ``+Nw`` ranges lost while storage failed, inside a ``recorder_failed``
               row's time window (not backfilled)
  detect       fault -> the engine noticed (ledger disconnect/stale row, or the status)
  recover      fault -> recorded data flowing again (mean/max over repeated faults)
  weight       the exchange's peak accepted REST weight per window / limit; ``REJ`` if
               the exchange ever had to answer 429/418 for real (injected ones excluded)
  exit         the process' exit code after SIGINT (``-9`` = killed by the row itself)

Usage: python bench/faults.py [--reconnect-s 120] [--soak-s 3600] [--quick] [--rows a,b]
(``make faults``). Prints one table; writes bench/results/faults.json. The window ends
with a drain that waits on conditions, not a sleep: the exchange has written its last
frames and the recorder's files hold the last id of every compared kind (``drain``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.exchange import ExchangeConfig, LocalExchange  # noqa: E402

SYMBOL = "BTCUSDT"
TRADE, AGG, DEPTH = "btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth@100ms"
ID_KINDS = {"trade": TRADE, "aggTrade": AGG, "depthUpdate": DEPTH}
DATA_KINDS = ("trade", "aggTrade", "depthUpdate", "bookTicker", "depthPartial", "kline")
DISCONNECTS = ("disconnect", "stale", "server_shutdown")

BASE_ARGS = (
    "--depth-update",
    "--set", "storage.flush_interval_s=0.2", "--set", "ui.status_interval_s=0.25",
    "--set", "connection.backoff_initial_s=0.05", "--set", "connection.backoff_max_s=0.5",
    "--set", "connection.backoff_reset_after_s=2",
    "--set", "connection.idle_ping_after_s=0.5", "--set", "connection.stale_after_s=2",
    "--set", "order_book.sync_limit=1000",
)
OUTPUT_KEEP = 400_000  # characters of process output kept (the tail)
RATE = 300.0  # order-flow operations per second: ~100 trades/s on BTCUSDT


def _now_ns() -> int:
    return time.time_ns()


# ------------------------------------------------------------------------- the process
class Proc:
    """A ``binance-live --no-ui`` subprocess; its output is read without blocking."""

    def __init__(self, ex_ws: str, ex_rest: str, storage: Path, *extra: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="240")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "tui", "--no-ui", "--ws-url", ex_ws, "--rest-url", ex_rest,
             "--storage-dir", str(storage), *BASE_ARGS, *extra],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.p.stdout is not None
        self.fd = self.p.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.out = ""
        # drain the pipe all the time: a full pipe would block the process' status prints
        # (and with them its event loop), which is a harness fault, not the engine's
        self._reader = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            self.read()
            if not self.alive():
                return
            await asyncio.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def read(self) -> str:
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.fd, 65536):
                self.out += chunk.decode(errors="replace")
        if len(self.out) > OUTPUT_KEEP:
            self.out = self.out[-OUTPUT_KEEP // 2:]
        return self.out

    def last_block(self) -> str:
        text = self.read()
        start = text.rfind("stream / connection")
        return text[start:] if start >= 0 else ""

    def summary(self) -> str:
        """The last complete status summary ("up …" to the REC state, wrapped lines joined)."""
        text = self.read()
        for block in reversed(text.split("stream / connection")[-3:]):
            lines = block.splitlines()
            at = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("up ")), None)
            if at is None:
                continue
            joined = " ".join(ln.strip() for ln in lines[at:])
            if "REC" in joined:
                return joined
        return ""

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> int:
        if self.alive():
            self.p.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.alive():
            self.p.kill()
            self.p.wait(10)
            self.read()
            return -999  # did not exit by itself
        self.read()
        return self.p.returncode

    def kill9(self) -> None:
        self.p.kill()
        self.p.wait(10)
        self.read()


async def wait_for(pred: Callable[[], Any], timeout: float, what: str,
                   every: float = 0.01) -> int:
    """Poll `pred` every `every` s; return the wall time (ns) it became true. Bounded."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)
    return _now_ns()


# ------------------------------------------------------------------------- a row
@dataclass
class Ctx:
    ex: LocalExchange
    proc: Proc
    storage: Path
    extra: tuple[str, ...]
    faults_ns: list[int] = field(default_factory=list)  # each injection (wall ns)
    detect_ns: list[int] = field(default_factory=list)  # detections seen outside the ledger
    recover_ns: list[int] = field(default_factory=list)  # recoveries seen outside the ledger
    restarts_ns: list[int] = field(default_factory=list)  # a new process from here on
    info: dict[str, Any] = field(default_factory=dict)
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, rss kB, fds)
    stop_ns: int = 0  # the window's end: order flow paused, then SIGINT

    def fault(self) -> int:
        ns = _now_ns()
        self.faults_ns.append(ns)
        return ns

    def trades_sent(self) -> int:
        return sum(1 for _, t in self.ex.sent_log if t.startswith('{"stream":"btcusdt@trade"'))

    def written(self) -> bool:
        """Every open connection has written all it queued (injected frames included)."""
        return all(not c.queue for c in self.ex.connections if not c.closed)

    async def flowing(self, timeout: float = 20.0, n: int = 20) -> int:
        """Wait until `n` more trades were sent to a live, unstalled connection."""
        start = self.trades_sent()
        return await wait_for(lambda: self.trades_sent() >= start + n
                              and any(not c.stalled for c in self.ex.connections),
                              timeout, f"{n} trades flowing")


FaultFn = Callable[[Ctx], Awaitable[None]]


@dataclass
class Row:
    name: str
    fault: FaultFn
    extra: tuple[str, ...] = ()
    exchange: dict[str, Any] = field(default_factory=dict)
    note: str = ""


async def run_row(row: Row, keep: bool = False) -> dict[str, Any]:
    storage = Path(tempfile.mkdtemp(prefix=f"faults-{row.name.split()[0]}-"))
    cfg = ExchangeConfig(**{"symbols": (SYMBOL,), "rate": RATE, "seed": 7,
                            "record_sent": True, **row.exchange})
    t0 = time.monotonic()
    result: dict[str, Any] = {"row": row.name, "note": row.note}
    try:
        async with LocalExchange(cfg) as ex:
            proc = Proc(ex.ws_url, ex.rest_url, storage, *row.extra)
            ctx = Ctx(ex, proc, storage, row.extra)
            try:
                await wait_for(lambda: "book BTCUSDT synced" in proc.summary(), 40,
                               "the process to record with a synced book")
                await ctx.flowing()
                try:
                    await row.fault(ctx)
                except TimeoutError as exc:  # measured as it is: stop, analyse, report
                    result["error"] = str(exc)
                    result["error_output"] = ctx.proc.read()[-3000:]
                    result["error_conns"] = [(c.id, c.closed, c.stalled, len(c.queue))
                                             for c in ex.connections]
                ctx.info["alive_before_stop"] = ctx.proc.alive()
                ctx.stop_ns = _now_ns()
                # end of the window: no more order flow, diffs flushed, feed drained
                ex.pause()
                if ctx.proc.alive():
                    try:
                        await drain(ctx)
                    except TimeoutError as exc:  # analysed anyway: the table says how much
                        result.setdefault("error", f"drain: {exc}")
                m = ex.market(SYMBOL)
                end = {"trade": m.last_trade_id, "aggTrade": m.last_agg_id,
                       "depthUpdate": m.update_id}
                status_line = ctx.proc.summary()
                code = await ctx.proc.stop(signal.SIGINT)
            finally:
                if ctx.proc.alive():
                    ctx.proc.p.kill()
            if list(storage.rglob(".*.arrows")):  # abandoned segments: recover them
                rec = Proc("ws://127.0.0.1:1", "http://127.0.0.1:1", storage)
                try:
                    await wait_for(lambda: "REC" in rec.read(), 30, "recovery start")
                finally:
                    await rec.stop(signal.SIGTERM)
            result.update(analyse(ctx, end, status_line))
            result["exit"] = code
            result["output_tail"] = ctx.proc.read()[-600:] if code != 0 else ""
    finally:
        result["seconds"] = round(time.monotonic() - t0, 1)
        if not keep:
            shutil.rmtree(storage, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                Path(str(storage) + ".moved").unlink()
            shutil.rmtree(str(storage) + ".moved", ignore_errors=True)
        else:
            result["storage"] = str(storage)
    return result


# ------------------------------------------------------------------------- the drain
# the id column of each recorded kind, and the wire stream/key it comes from
ID_COLUMN = {"trade": "trade_id", "aggTrade": "agg_id", "depthUpdate": "final_update_id",
             "bookTicker": "update_id", "depthPartial": "last_update_id"}
WIRE_KEY = {"trade": (TRADE, "t"), "aggTrade": (AGG, "a"), "depthUpdate": (DEPTH, "u"),
            "bookTicker": ("btcusdt@bookTicker", "u"),
            "depthPartial": ("btcusdt@depth20@100ms", "lastUpdateId")}


class SentScan:
    """The exchange's sent-frame log read incrementally: per stream the largest id sent,
    and per connection the last partial-depth ``lastUpdateId`` it wrote."""

    def __init__(self, ex: LocalExchange) -> None:
        self.ex = ex
        self.at = 0
        self.top: dict[str, int] = {}
        self.last_partial: dict[int, int] = {}
        self._heads = {f'{{"stream":"{s}"': (kind, key) for kind, (s, key) in WIRE_KEY.items()}

    def scan(self) -> None:
        log = self.ex.sent_log
        end = len(log)
        for conn, text in itertools.islice(log, self.at, end):
            head = text[:text.find('","data"') + 1] if text.startswith('{"stream":') else ""
            hit = self._heads.get(head)
            if hit is None:
                continue
            try:
                value = json.loads(text)["data"][hit[1]]
            except (ValueError, KeyError, TypeError):
                continue  # a frame a fault cut short
            kind = hit[0]
            self.top[kind] = max(self.top.get(kind, -1), value)
            if kind == "depthPartial":
                self.last_partial[conn] = value
        self.at = end


def _max_of(path: Path, column: str) -> int:
    """The largest ``column`` value in one finished Parquet file or in the complete
    batches of an in-progress Arrow IPC segment; -1 if none (or it moved meanwhile)."""
    try:
        if path.name.endswith(".arrows"):
            batches = []
            with pa.OSFile(str(path)) as f:
                reader = pa.ipc.open_stream(f)
                with contextlib.suppress(StopIteration, pa.ArrowInvalid, OSError):
                    while True:  # a batch being appended right now is torn: stop there
                        batches.append(reader.read_next_batch().column(column))
            values = [pc.max(b).as_py() for b in batches if len(b)]
        else:
            col = pq.read_table(path, columns=[column]).column(column)
            values = [pc.max(col).as_py()] if len(col) else []
    except (OSError, pa.ArrowException):  # renamed (rotated / finished) between list and read
        return -1
    return max((v for v in values if v is not None), default=-1)


def recorded_max(root: Path, kind: str) -> int:
    """The largest id of `kind` the recorder has put in its files so far (finished Parquet
    and the flushed batches of the open segment): the recorder's own progress on disk."""
    column = ID_COLUMN[kind]
    best = -1
    for path in (root / kind).rglob("*"):
        name = path.name
        finished = name.endswith(".parquet") and not name.startswith((".", "_"))
        if finished or (name.startswith(".") and name.endswith(".arrows")):
            best = max(best, _max_of(path, column))
    return best


async def drain(ctx: Ctx, timeout: float = 20.0) -> None:
    """After ``ex.pause()``: wait until the exchange has written the end of the window
    and the recorder's files hold it, so the SIGINT cuts nothing in flight.

    Exchange side: every open connection wrote a partial-depth frame carrying the book's
    final update id (the 100 ms tick publishes the pending diff before it, on the same
    queue) and has nothing queued. Recorder side: the largest id of every compared kind
    that was sent is in its files (in order per kind, so everything before it is too).
    """
    ex, m = ctx.ex, ctx.ex.market(SYMBOL)
    scan = SentScan(ex)

    def exchange_done() -> bool:
        scan.scan()
        conns = [c for c in ex.connections if not c.closed]
        return bool(conns) and ctx.written() and all(
            scan.last_partial.get(c.id) == m.update_id for c in conns)

    await wait_for(exchange_done, timeout, "the exchange to write the paused window's end")
    scan.scan()
    targets = {kind: scan.top[kind] for kind in ID_COLUMN if kind in scan.top}

    def behind() -> list[str]:
        have = {kind: recorded_max(ctx.storage, kind) for kind in targets}
        return [f"{kind} {have[kind]} < {top}" for kind, top in targets.items()
                if have[kind] < top]

    try:
        await wait_for(lambda: not ctx.proc.alive() or not behind(), timeout,
                       "the recorder's files to hold the last sent ids", every=0.1)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {', '.join(behind())}") from None
    if not ctx.proc.alive():  # reported like a timeout: the row did not complete
        raise TimeoutError(f"the process exited (code {ctx.proc.p.returncode}) while the "
                           f"feed drained: {', '.join(behind())}")


# ------------------------------------------------------------------------- analysis
def read_kind(root: Path, kind: str) -> list[dict[str, Any]]:
    path = root / kind
    if not path.exists():
        return []
    table = ds.dataset(path, format="parquet", partitioning="hive").to_table()
    if table.num_rows == 0:
        return []
    table = table.sort_by([("recv_time", "ascending"), ("seq", "ascending")])
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table.to_pylist()


def ranges(ids: list[int]) -> list[tuple[int, int]]:
    """Sorted distinct ids -> maximal [a, b] runs."""
    out: list[tuple[int, int]] = []
    for i in ids:
        if out and i == out[-1][1] + 1:
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def complement(spans: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] minus the union of `spans` (inclusive intervals), as sorted ranges."""
    missing: list[tuple[int, int]] = []
    at = lo
    for a, b in sorted(spans):
        if b < at:
            continue
        if a > at:
            missing.append((at, min(a - 1, hi)))
        at = max(at, b + 1)
        if at > hi:
            break
    if at <= hi:
        missing.append((at, hi))
    return [(a, b) for a, b in missing if a <= b]


def size(rs: list[tuple[int, int]]) -> int:
    return sum(b - a + 1 for a, b in rs)


def sent_frames(ex: LocalExchange) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for _, text in ex.sent_log:
        if not text.startswith('{"stream":'):
            continue
        try:
            frame = json.loads(text)
        except ValueError:
            continue  # a truncated / malformed frame the fault sent
        if isinstance(frame, dict) and "stream" in frame:
            out.setdefault(frame["stream"], []).append(frame["data"])
    return out


def _span(kind: str, item: dict[str, Any], wire: bool) -> tuple[int, int]:
    if kind == "trade":
        i = item["t"] if wire else item["trade_id"]
        return i, i
    if kind == "aggTrade":
        i = item["a"] if wire else item["agg_id"]
        return i, i
    return (item["U"], item["u"]) if wire else (item["first_update_id"],
                                                 item["final_update_id"])


def analyse(ctx: Ctx, end: dict[str, int], status_line: str) -> dict[str, Any]:
    ex, root = ctx.ex, ctx.storage
    sent = sent_frames(ex)
    ledger = read_kind(root, "_ledger")
    failed_windows = [(e["start_time"], e["end_time"]) for e in ledger
                      if e["what"] == "recorder_failed"]
    rows = {k: [r for r in read_kind(root, k) if r.get("symbol", SYMBOL) == SYMBOL]
            for k in DATA_KINDS}
    out: dict[str, Any] = {"kinds": {}}
    for kind, stream in ID_KINDS.items():
        wire = sent.get(stream, [])
        rec = rows[kind]
        live = [r for r in rec if not r.get("backfilled")]
        sent_spans = [_span(kind, d, True) for d in wire]
        rec_spans = [_span(kind, r, False) for r in rec]
        live_spans = [_span(kind, r, False) for r in live]
        if not sent_spans:
            out["kinds"][kind] = {"error": "nothing sent"}
            continue
        lo, hi = min(a for a, _ in sent_spans), end[kind]
        missing = complement(rec_spans, lo, hi)  # lost for good (after any backfill)
        live_missing = complement(live_spans, lo, hi)  # what the socket did not deliver
        never_sent = complement(sent_spans, lo, hi)
        in_flight = _minus(live_missing, never_sent)  # sent on the socket, never recorded
        dups = len(rec_spans) - len(set(rec_spans))
        unsent_recorded = len(set(live_spans) - set(sent_spans))
        disorder = sum(1 for x, y in itertools.pairwise(live_spans) if y[0] <= x[1])
        gaps = [(e["last_good"], e["first_missing"]) for e in ledger
                if e["what"] == "gap" and e["stream"] == stream]
        # a gap row is closed by a backfill row (REST) or a gap_filled row (late frames)
        closed = {e["first_missing"] for e in ledger if e["stream"] == stream
                  and e["what"] in ("backfill", "gap_filled")}
        starts = {a for a, _ in missing}
        exact = sum(1 for a, _ in missing if (a - 1, a) in gaps)
        # ranges lost while the recorder was failing: ledgered by the recorder_failed
        # row's time window (the ids were received; the exchange's event times place them)
        times = {i: d["E"] * 1_000_000 for d in wire for i in _span(kind, d, True)}
        in_window = [(a, b) for a, b in missing if (a - 1, a) not in gaps
                     and a in times and b in times
                     and any(w0 - 1e9 <= times[a] and times[b] <= w1 + 1e9
                             for w0, w1 in failed_windows)]
        false = [g for g in gaps if g[1] not in starts and g[1] not in closed]
        # what the socket lost in flight must sit inside a gap row's range, even when the
        # backfill has filled it since
        spans = [(e["first_missing"], e["last_missing"]) for e in ledger
                 if e["what"] == "gap" and e["stream"] == stream]
        unledgered_flight = [r for r in in_flight
                             if not any(a <= r[0] and r[1] <= b for a, b in spans)]
        out["kinds"][kind] = {
            "produced": hi - lo + 1, "first": lo, "last": hi,
            "recorded_rows": len(rec), "sent_frames": len(wire),
            "backfilled": len(rec) - len(live),
            "lost_ids": size(missing), "lost_ranges": len(missing),
            "socket_missed_ids": size(live_missing),
            "never_sent_ids": size(never_sent), "in_flight_ids": size(in_flight),
            "duplicates": dups, "out_of_order": disorder,
            "recorded_not_sent": unsent_recorded,
            "gap_rows": len(gaps), "closed_gap_rows": len(closed & {g[1] for g in gaps}),
            "ranges_ledgered_exactly": exact, "ranges_in_failed_window": len(in_window),
            "false_gap_rows": len(false),
            "unledgered_ranges": [r for r in missing if (r[0] - 1, r[0]) not in gaps
                                  and r not in in_window][:20],
            "missing_ranges": missing[:20],
            "in_flight_unledgered": unledgered_flight[:20],
        }
    # streams without contiguous ids: every distinct frame sent vs recorded
    outages = outage_marks(ledger)
    for kind in ("bookTicker", "depthPartial"):
        out["kinds"][kind] = compare_frames(sent_by_conn(ex, kind), rows[kind],
                                            ID_COLUMN[kind], outages)
    # timing: per injected fault, detection and recovery
    detect, recover = [], []
    for i, f in enumerate(ctx.faults_ns):
        nxt = ctx.faults_ns[i + 1] if i + 1 < len(ctx.faults_ns) else ctx.stop_ns
        det = [e["end_time"] for e in ledger if e["what"] in DISCONNECTS
               and f <= e["end_time"] < nxt]
        det += [d for d in ctx.detect_ns if f <= d < nxt]
        if det:
            detect.append((min(det) - f) / 1e6)
        restarted = any(f <= r < nxt for r in ctx.restarts_ns) or f in ctx.restarts_ns
        before = [r["conn_id"] for k in ("trade", "aggTrade") for r in rows[k]
                  if r["recv_time"] < f]
        conn_before = max(before) if before else 0
        after = [r["recv_time"] for k in ("trade", "aggTrade", "depthUpdate") for r in rows[k]
                 if f <= r["recv_time"] < nxt and (restarted or r["conn_id"] != conn_before)]
        rec_ext = [r for r in ctx.recover_ns if f <= r < nxt]
        if rec_ext:
            recover.append((min(rec_ext) - f) / 1e6)
        elif after and (det or restarted):
            recover.append((min(after) - f) / 1e6)
    out["faults"] = len(ctx.faults_ns)
    out["detect_ms"] = _stats(detect)
    out["recover_ms"] = _stats(recover)
    out["reconnects"] = sum(1 for e in ledger if e["what"] == "connect") - 1 - \
        len(ctx.restarts_ns)
    out["ledger_counts"] = {w: sum(1 for e in ledger if e["what"] == w)
                            for w in sorted({e["what"] for e in ledger})}
    lat = [(r["recv_time"] // 1_000_000) - r["event_time"] for r in rows["trade"]]
    out["trade_latency_ms_max"] = max(lat) if lat else None
    out["weight"] = {"limit": ex.limiter.limit, "peak_accepted": ex.limiter.peak_accepted,
                     "rejected": ex.limiter.rejected,
                     "injected": dict(ex.faults.injected),
                     "requests_inside_retry_after": _inside_pause(ex)}
    out["status_line"] = status_line[-400:]
    m = re.search(r"bad frames (\d+)", status_line)
    out["bad_frames"] = int(m[1]) if m else None
    out["info"] = ctx.info
    if ctx.samples:
        out["soak"] = _soak(ctx.samples)
    return out


def sent_by_conn(ex: LocalExchange, kind: str) -> dict[int, Counter[int]]:
    """Per exchange connection, how often it wrote each identity of `kind` (the ``u`` of a
    bookTicker, the ``lastUpdateId`` of a partial depth frame)."""
    stream, key = WIRE_KEY[kind]
    head = f'{{"stream":"{stream}"'
    out: dict[int, Counter[int]] = {}
    for conn, text in ex.sent_log:
        if text.startswith(head):
            try:
                value = json.loads(text)["data"][key]
            except (ValueError, KeyError, TypeError):
                continue  # a frame a fault cut short: never decodable
            out.setdefault(conn, Counter())[value] += 1
    return out


def outage_marks(ledger: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Receive-time windows in which the ledger says the feed was down: a disconnect (its
    detection instant) or an id gap (last good receive .. the event that revealed it;
    after a kill -9 that is the restarted recorder's gap from the recorded tail)."""
    marks = [(e["end_time"], e["end_time"]) for e in ledger if e["what"] in DISCONNECTS]
    marks += [(e["start_time"], e["end_time"]) for e in ledger if e["what"] == "gap"]
    return marks


def compare_frames(sent: dict[int, Counter[int]], rows: list[dict[str, Any]], column: str,
                   outages: list[tuple[int, int]]) -> dict[str, Any]:
    """Frames without contiguous ids, compared on identity over every connection.

    The set of identities any connection was sent must equal the set recorded: during a
    rollover (or with redundancy) both connections deliver each frame, and the recording
    holds it once. "Once" is per frame: a bookTicker ``u`` is sent once per connection,
    and so is a partial book while the market moves; an unchanged book is re-sent every
    100 ms on the same socket (the paused tail), and each re-send may be recorded, never
    more than there were 100 ms ticks (``sum - (connections - 1)`` bounds them). What is
    missing must lie between recorded neighbours whose receive times bracket a ledgered
    outage (``outage_marks``), else it is ``unledgered``.
    """
    per_id: dict[int, list[int]] = {}
    for counts in sent.values():
        for value, n in counts.items():
            per_id.setdefault(value, []).append(n)
    recorded = Counter(r[column] for r in rows)
    times: dict[int, list[int]] = {}
    for r in rows:
        times.setdefault(r[column], []).append(r["recv_time"])
    twice = 0
    for value, n in recorded.items():
        ns = per_id.get(value)
        if ns is not None:
            allowed = 1 if max(ns) == 1 else sum(ns) - (len(ns) - 1)
            twice += max(0, n - allowed)
    missing = sorted(set(per_id) - set(recorded))
    order = sorted(recorded)
    unledgered = []
    for value in missing:
        i = bisect.bisect(order, value)
        t_prev = max(times[order[i - 1]]) if i else -1
        t_next = min(times[order[i]]) if i < len(order) else 1 << 62
        if not any(a <= t_next and b >= t_prev for a, b in outages):
            unledgered.append(value)
    return {"sent_frames": sum(sum(c.values()) for c in sent.values()),
            "distinct_sent": len(per_id), "connections": len(sent),
            "recorded_rows": len(rows), "distinct_recorded": len(recorded),
            "sent_not_recorded": len(missing), "missing_sample": missing[:10],
            "recorded_not_sent": sum(n for v, n in recorded.items() if v not in per_id),
            "recorded_twice": twice, "unledgered_missing": len(unledgered),
            "unledgered_sample": unledgered[:10]}


def _minus(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Ranges of `a` not in `b` (both sorted, disjoint)."""
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        out += complement([r for r in b if r[1] >= lo and r[0] <= hi], lo, hi)
    return out


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"n": len(values), "mean": round(sum(values) / len(values), 1),
            "max": round(max(values), 1)}


def _inside_pause(ex: LocalExchange) -> int:
    """REST requests that reached the exchange inside the Retry-After of an earlier 429/418
    (50 ms of grace for a request already in flight when the 429 was sent)."""
    log = ex.faults.rest_log
    count = 0
    for i, (t, _, status, retry) in enumerate(log):
        if status in (418, 429):
            count += sum(1 for t2, *_ in log[i + 1:] if t + 0.05 < t2 < t + retry)
    return count


def _soak(samples: list[tuple[float, int, int]]) -> dict[str, Any]:
    warm = [s for s in samples if s[0] >= samples[0][0] + (samples[-1][0] - samples[0][0]) * 0.25]
    first, last = warm[0], warm[-1]
    return {"samples": len(samples), "seconds": round(samples[-1][0] - samples[0][0], 1),
            "rss_kb_after_warmup": first[1], "rss_kb_end": last[1],
            "rss_kb_max": max(s[1] for s in samples),
            "rss_growth_pct": round((last[1] - first[1]) * 100 / first[1], 1),
            "fds_after_warmup": first[2], "fds_end": last[2],
            "fds_max": max(s[2] for s in samples)}


def proc_usage(pid: int) -> tuple[int, int]:
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


# ------------------------------------------------------------------------- the faults
def reconnect_loop(seconds: float, every: float = 5.0) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        n = max(1, int(seconds // every))
        for i in range(n):
            await ctx.flowing()
            ctx.fault()
            if i % 2 == 0:
                ctx.ex.faults.drop_all()  # abnormal closure, 1006 at the client
            else:
                ctx.ex.faults.close_all(1008, "Policy violation")
            await asyncio.sleep(every)
        await ctx.flowing()
        ctx.info["cycles"] = n
    return fault


def drop_one_loop(seconds: float, every: float = 2.5) -> FaultFn:
    """With two connections carrying the same streams: every ``every`` s the oldest open
    one is dropped (TCP abort), so one is always up; nothing may be lost."""
    async def fault(ctx: Ctx) -> None:
        n = max(1, int(seconds // every))
        for _ in range(n):
            await wait_for(lambda: len([c for c in ctx.ex.connections if not c.closed]) >= 2,
                           20, "two connections")
            await ctx.flowing()
            ctx.fault()
            victim = min((c for c in ctx.ex.connections if not c.closed), key=lambda c: c.id)
            ctx.ex.faults.injected["drop"] += 1
            victim.abort()
            await asyncio.sleep(every)
        await ctx.flowing()
        ctx.info["cycles"] = n
    return fault


async def stall(ctx: Ctx) -> None:
    ctx.fault()
    ctx.ex.faults.stall(True)  # the open connection goes silent (no data, no pings)
    stalled = ctx.ex.connections
    await wait_for(lambda: all(c.closed for c in stalled), 20, "the stalled connection replaced")
    await ctx.flowing()


def rollover(lifetime: float, cycles: int, notice: bool = False) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        first = ctx.ex.connections
        ctx.ex.faults.set_lifetime(lifetime, existing=True, notice=notice)
        # every expiry is a fault: the open connection reaches its lifetime
        for _ in range(cycles):
            conns = ctx.ex.connections or first
            ends = [c.lifetime_end for c in conns]
            loop_now = asyncio.get_running_loop().time()
            await asyncio.sleep(max(0.0, min(ends) - loop_now))
            ctx.fault()
            await wait_for(lambda: all(c.closed for c in conns),  # noqa: B023 - awaited here
                           10, "expiry")
            await ctx.flowing()
        ctx.ex.faults.set_lifetime(86400.0, existing=True)
        ctx.info["lifetime_s"] = lifetime
    return fault


def malformed(n: int) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.send_malformed(n)
        ctx.detect_ns.append(await wait_for(lambda: f"bad frames {n}" in ctx.proc.summary(),
                                            30, f"{n} bad frames"))
        await ctx.flowing()
    return fault


def unknown(n: int) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.send_unknown(n)
        await wait_for(ctx.written, 20, f"{n} unknown frames written")
        await ctx.flowing()
    return fault


def truncated(n: int) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.truncate_next(n)
        await wait_for(lambda: len(ctx.ex.faults.truncated) >= n, 20, "frames truncated")
        await ctx.flowing()
        kinds: dict[str, int] = {}
        for _, text in ctx.ex.faults.truncated:
            stream = json.loads(text).get("stream", "?")
            kinds[stream] = kinds.get(stream, 0) + 1
        ctx.info["truncated_by_stream"] = kinds
    return fault


def duplicates(n: int) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.info["resent"] = ctx.ex.faults.duplicate_last(n)
        await wait_for(ctx.written, 20, "the re-sent frames written")
        await ctx.flowing()
    return fault


def reordered(n: int) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.reorder_next(n)
        await wait_for(lambda: ctx.ex.faults.injected["reordered"] >= n, 20, "reordered")
        await ctx.flowing()
    return fault


def slow_drip(delay_s: float, seconds: float) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.slow_drip(delay_s)
        await asyncio.sleep(seconds)
        ctx.info["backlog_at_end"] = max((len(c.queue) for c in ctx.ex.connections), default=0)
        ctx.ex.faults.slow_drip(0)
        await wait_for(lambda: all(not c.queue for c in ctx.ex.connections), 30, "drained")
        await ctx.flowing()
    return fault


def rest_storm(status: int, n: int, retry_after: float) -> FaultFn:
    """`n` REST failures while the book needs a snapshot (a diff-depth id is skipped)."""
    async def fault(ctx: Ctx) -> None:
        f = ctx.fault()
        ctx.ex.faults.rest_errors(status, n, retry_after)
        ctx.ex.faults.skip_depth_id(SYMBOL)  # forces a book resync: REST is needed now
        word = "REST BANNED" if status == 418 else "REST PAUSED"
        if status in (418, 429):
            ctx.detect_ns.append(await wait_for(lambda: word in ctx.proc.summary(), 30, word))
        await wait_for(lambda: ctx.ex.faults.injected[f"rest_{status}"] >= n, 60,
                       "every injected failure served")
        await wait_for(lambda: re.search(r"book BTCUSDT synced [^·]*resyncs 1",
                                         ctx.proc.summary()), 60, "the book resynced")
        ctx.recover_ns.append(_now_ns())
        t0 = ctx.ex.faults.rest_log[0][0]
        ctx.info["rest_log"] = [(round(t - t0, 3), r, s)
                                for t, r, s, _ in ctx.ex.faults.rest_log][-40:]
        ctx.info["storm_to_resync_ms"] = (_now_ns() - f) / 1e6
        await ctx.flowing()
    return fault


async def slow_rest(ctx: Ctx) -> None:
    ctx.fault()
    ctx.ex.faults.slow_rest(3.0)
    ctx.ex.faults.skip_depth_id(SYMBOL)
    await wait_for(lambda: re.search(r"book BTCUSDT synced [^·]*resyncs 1",
                                     ctx.proc.summary()), 60, "the book resynced")
    ctx.recover_ns.append(_now_ns())
    ctx.ex.faults.slow_rest(0)
    await ctx.flowing()


def clock(step_ms: int, drift_ppm: float, seconds: float) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        ctx.fault()
        ctx.ex.faults.set_clock(offset_ms=step_ms, drift_ppm=drift_ppm)

        def seen() -> bool:
            m = re.findall(r"clock offset ([+-]?\d+(?:\.\d+)?)", ctx.proc.summary())
            return bool(m) and abs(float(m[-1]) - step_ms) < 100
        ctx.detect_ns.append(await wait_for(seen, 30, "the engine to measure the new offset"))
        await asyncio.sleep(seconds)
        m = re.findall(r"clock offset ([+-]?\d+(?:\.\d+)?)", ctx.proc.summary())
        ctx.info["exchange_offset_ms"] = round(step_ms + ctx.ex.faults.drift_ms(), 1)
        ctx.info["engine_offset_ms"] = float(m[-1]) if m else None
        await ctx.flowing()
    return fault


async def kill9_restart(ctx: Ctx) -> None:
    await asyncio.sleep(1.0)  # the schedule: record a while (rows flushed and in memory)
    ctx.fault()
    ctx.proc.kill9()  # rows of the last flush interval are still in memory: lost
    ctx.info["killed_exit"] = ctx.proc.p.returncode
    ctx.restarts_ns.append(ctx.faults_ns[-1])
    ctx.proc = Proc(ctx.ex.ws_url, ctx.ex.rest_url, ctx.storage, *ctx.extra)
    await wait_for(lambda: "REC" in ctx.proc.summary(), 40, "the restarted recorder")
    await ctx.flowing()
    # recovery of the abandoned segments runs (and logs) before recording starts
    m = re.findall(r"recovered", ctx.proc.read())
    ctx.info["recovery_mentions"] = len(m)


async def disk_full(ctx: Ctx) -> None:
    """The storage directory becomes unusable: renamed away and replaced by a plain file
    (tmpfs/ENOSPC is not available here). Open segments keep their handles, so the
    failure surfaces at the next new file (small rotate_mb) or close. Then the directory
    is restored and recording retried with SIGUSR1 (the headless ``r``)."""
    ctx.fault()
    moved = Path(str(ctx.storage) + ".moved")
    ctx.storage.rename(moved)
    ctx.storage.write_text("not a directory")
    ctx.detect_ns.append(await wait_for(lambda: "REC FAILED" in ctx.proc.summary(), 30,
                                        "REC FAILED"))
    await asyncio.sleep(2.0)
    ctx.info["rec_failed_line"] = ctx.proc.summary().split("REC FAILED", 1)[-1][:200]
    ctx.storage.unlink()
    moved.rename(ctx.storage)
    ctx.proc.p.send_signal(signal.SIGUSR1)  # retry recording
    ctx.recover_ns.append(await wait_for(
        lambda: "REC " in ctx.proc.summary() and "FAILED" not in ctx.proc.summary()
        and "REC off" not in ctx.proc.summary(), 20, "recording again"))
    await ctx.flowing()
    m = re.search(r"REC ([\d,]+) rows", ctx.proc.summary())
    ctx.info["rows_after_retry"] = m[1] if m else None


def soak(seconds: float, drop_every: float = 15.0) -> FaultFn:
    async def fault(ctx: Ctx) -> None:
        t0 = time.monotonic()
        next_drop = t0 + drop_every
        while time.monotonic() - t0 < seconds:
            rss, fds = proc_usage(ctx.proc.pid)
            ctx.samples.append((time.monotonic() - t0, rss, fds))
            if time.monotonic() >= next_drop:
                ctx.fault()
                ctx.ex.faults.drop_all()
                next_drop += drop_every
            await asyncio.sleep(1.0)
        await ctx.flowing()
    return fault


def matrix(reconnect_s: float, soak_s: float) -> list[Row]:
    return [
        Row(f"reconnect every 5s for {reconnect_s:g}s", reconnect_loop(reconnect_s),
            note="alternating TCP abort (1006) and close 1008"),
        Row("stall (silent socket)", stall, note="stale_after_s=2: replaced"),
        Row("24h rollover (lifetime 4s) x3", rollover(4.0, 3),
            note="close 1001 at the lifetime, no notice; make-before-break at 3 s",
            extra=("--set", "connection.rollover_after_s=3")),
        Row("serverShutdown before the cut x3", rollover(4.0, 3, notice=True),
            note="notice 50 ms before close 1001; the engine rolls over on the notice"),
        Row("redundancy 2, one link dropped /2.5s", drop_one_loop(20.0),
            note="connection.redundancy=2: the other link carries the feed",
            extra=("--set", "connection.redundancy=2")),
        Row("10k malformed frames", malformed(10_000)),
        Row("3k unknown-event frames", unknown(3_000)),
        Row("30 truncated data frames", truncated(30)),
        Row("duplicates (last 20 re-sent)", duplicates(20)),
        Row("out of order (5 swaps)", reordered(5)),
        Row("slow drip 10ms/frame 5s", slow_drip(0.01, 5.0)),
        Row("429 storm x5 (Retry-After 1)", rest_storm(429, 5, 1.0)),
        Row("418 ban (Retry-After 3)", rest_storm(418, 1, 3.0)),
        Row("5xx x6 (503)", rest_storm(503, 6, 0.0)),
        Row("slow REST 3s", slow_rest),
        Row("clock step +2.5s, drift 2000ppm", clock(2500, 2000.0, 4.0),
            extra=("--set", "connection.clock_sync_interval_s=1")),
        Row("kill -9 + restart", kill9_restart),
        Row("disk unusable (dir -> file)", disk_full, extra=("--set", "storage.rotate_mb=0.02")),
        Row(f"soak {soak_s:g}s (drop every 15s)", soak(soak_s),
            exchange={"rate": 1000.0}),
    ]


# ------------------------------------------------------------------------- report
def cell_ms(st: dict[str, float] | None) -> str:
    if not st:
        return "—"
    return f"{st['mean']:.0f}" if st["n"] == 1 else f"{st['mean']:.0f}/{st['max']:.0f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (f"{'row':36} {'produced':>8} {'recorded':>8} {'lost t/a/d':>14} {'backfill t/a':>12} "
            f"{'sent,unrec':>10} {'bt/pd':>7} "
            f"{'dup':>4} {'ledger':>11} {'detect ms':>10} {'recover ms':>11} {'weight':>10} "
            f"{'exit':>4}")
    lines = [head, "-" * len(head)]
    errors: list[str] = []
    for r in results:
        if "kinds" not in r:
            lines.append(f"{r['row']:36} ERROR {r.get('error', '')[:120]}")
            continue
        if r.get("error"):
            errors.append(f"  {r['row']}: {r['error']}")
        k = r["kinds"]
        t, a, d = k["trade"], k["aggTrade"], k["depthUpdate"]
        lost = f"{t.get('lost_ids', '?')}/{a.get('lost_ids', '?')}/{d.get('lost_ids', '?')}"
        inflight = sum(x.get("in_flight_ids", 0) for x in (t, a, d))
        bt, pd = k["bookTicker"], k["depthPartial"]
        twice = bt.get("recorded_twice", 0) + pd.get("recorded_twice", 0)
        frames = f"{bt.get('sent_not_recorded', '?')}/{pd.get('sent_not_recorded', '?')}" + \
            (f" +{twice}x" if twice else "")
        bf = f"{t.get('backfilled', 0)}/{a.get('backfilled', 0)}"
        dup = sum(x.get("duplicates", 0) for x in (t, a, d))
        ranges_ = sum(x.get("lost_ranges", 0) for x in (t, a, d))
        exact = sum(x.get("ranges_ledgered_exactly", 0) for x in (t, a, d))
        false = sum(x.get("false_gap_rows", 0) for x in (t, a, d))
        closed = sum(x.get("closed_gap_rows", 0) for x in (t, a, d))
        windowed = sum(x.get("ranges_in_failed_window", 0) for x in (t, a, d))
        ledger = (f"{exact}+{windowed}w" if windowed else f"{exact}") + f"/{ranges_}" + \
            (f" c{closed}" if closed else "") + (f" +{false}f" if false else "")
        w = r["weight"]
        weight = f"{w['peak_accepted']}/{w['limit']}" + (" REJ" if w["rejected"] else "")
        lines.append(
            f"{r['row'][:36]:36} {t.get('produced', 0):>8} {t.get('recorded_rows', 0):>8} "
            f"{lost:>14} {bf:>12} {inflight:>10} {frames:>7} {dup:>4} {ledger:>11} "
            f"{cell_ms(r['detect_ms']):>10} {cell_ms(r['recover_ms']):>11} {weight:>10} "
            f"{r['exit']:>4}"
            + (" !" if r.get("error") else ""))
    if errors:
        lines += ["! the row's fault did not complete:", *errors]
    return "\n".join(lines)


async def main_async(ns: argparse.Namespace) -> list[dict[str, Any]]:
    rows = matrix(ns.reconnect_s, ns.soak_s)
    if ns.rows:
        wanted = [w.strip().lower() for w in ns.rows.split(",")]
        rows = [r for r in rows if any(w in r.name.lower() for w in wanted)]
    results = []
    for row in rows:
        print(f"… {row.name}", file=sys.stderr, flush=True)
        try:
            results.append(await run_row(row, keep=ns.keep))
        except Exception as exc:  # noqa: BLE001 - one broken row must not hide the others
            results.append({"row": row.name, "error": f"{type(exc).__name__}: {exc}"})
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reconnect-s", type=float, default=120.0,
                   help="duration of the reconnect-every-5s row (reduced: 15)")
    p.add_argument("--soak-s", type=float, default=3600.0,
                   help="duration of the soak row (the issue: 1 h, RSS and fds flat)")
    p.add_argument("--quick", action="store_true", help="reconnect 15 s, soak 30 s")
    p.add_argument("--rows", default="", help="comma-separated name fragments to run")
    p.add_argument("--keep", action="store_true", help="keep the recordings")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "faults.json"))
    ns = p.parse_args()
    if ns.quick:
        ns.reconnect_s, ns.soak_s = 15.0, 30.0
    results = asyncio.run(main_async(ns))
    print(table(results))
    for r in results:
        if "soak" in r:
            s = r["soak"]
            print(f"soak: RSS {s['rss_kb_after_warmup']:,} → {s['rss_kb_end']:,} kB "
                  f"({s['rss_growth_pct']:+.1f}%, max {s['rss_kb_max']:,}), "
                  f"fds {s['fds_after_warmup']} → {s['fds_end']} (max {s['fds_max']})")
    Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
    Path(ns.out).write_text(json.dumps({"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                   time.gmtime()),
                                        "rate_ops_per_s": RATE, "results": results},
                                       indent=1, default=str))
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
