"""A real ``binance-live --no-ui`` process recording from the local exchange.

Sent == stored across SIGINT, and kill -9 loses nothing that was flushed.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import ROOT, read_kind, wait_until

STREAM_LINE = re.compile(r"^\s+(\w+@\S+)\s+(?:on|off)\s+[\d.,]+\s+([\d,]+)\s", re.M)
ON_DISK = re.compile(r"REC\s+[\d,]+\s+rows\s+\(([\d,]+)\s+on\s+disk")


class Proc:
    """A binance-live subprocess whose output is read without blocking the event loop."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="220")
        self.p = subprocess.Popen([sys.executable, "-m", "tui", "--no-ui", *args], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert self.p.stdout is not None
        self.fd = self.p.stdout.fileno()
        os.set_blocking(self.fd, False)
        self.out = ""

    def read(self) -> str:
        try:
            while chunk := os.read(self.fd, 65536):
                self.out += chunk.decode(errors="replace")
        except BlockingIOError:
            pass
        return self.out

    def last_block(self) -> str:
        text = self.read()
        start = text.rfind("stream / connection")
        return text[start:] if start >= 0 else ""

    def totals(self) -> dict[str, int]:
        block = self.last_block()
        if "REC" not in block:  # the block is not complete yet
            return {}
        return {m[0]: int(m[1].replace(",", "")) for m in STREAM_LINE.findall(block)}

    def on_disk(self) -> int:
        found = ON_DISK.findall(self.read())
        return int(found[-1].replace(",", "")) if found else 0

    async def finish(self, sig: int, timeout: float = 30) -> int:
        self.p.send_signal(sig)
        deadline = time.monotonic() + timeout
        while self.p.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self.p.poll() is None:
            self.p.kill()
            raise AssertionError("process did not exit:\n" + self.read()[-2000:])
        self.read()
        return self.p.returncode


COMMON = ("--set", "storage.flush_interval_s=0.2", "--set", "ui.status_interval_s=0.25",
          "--set", "connection.stale_after_s=120", "--set", "connection.idle_ping_after_s=60",
          "--depth-update", "--set", "streams.miniTicker.enabled=true",
          "--set", "streams.kline.interval=1s")


def sent_by_stream(ex: LocalExchange) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, text in ex.sent_log:
        frame = json.loads(text)
        if "stream" in frame:
            out[frame["stream"]].append(frame["data"])
    return out


async def freeze_and_wait_received(ex: LocalExchange, proc: Proc
                                   ) -> dict[str, list[dict[str, Any]]]:
    """Stall the exchange (what it sent is then final) and wait until the process reports
    receiving exactly that; returns what was sent, per stream."""
    ex.faults.stall(True)
    await asyncio.sleep(0)
    sent = sent_by_stream(ex)
    expected = {name: len(items) for name, items in sent.items()}
    await wait_until(lambda: proc.totals() == expected, 20,
                     f"the process to report receiving {expected}")
    return sent


def levels(rows: list[dict[str, float]]) -> list[list[float]]:
    return [[lv["price"], lv["qty"]] for lv in rows]


def num(levels_: list[list[str]]) -> list[list[float]]:
    return [[float(p), float(q)] for p, q in levels_]


CHECKS: dict[str, tuple[str, Callable[[dict[str, Any], dict[str, Any]], bool]]] = {
    "trade": ("btcusdt@trade", lambda r, d: (r["trade_id"], r["price"], r["qty"],
                                              r["trade_time"], r["buyer_is_maker"])
              == (d["t"], float(d["p"]), float(d["q"]), d["T"], d["m"])),
    "aggTrade": ("btcusdt@aggTrade", lambda r, d: (r["agg_id"], r["first_trade_id"],
                                                    r["last_trade_id"], r["price"])
                 == (d["a"], d["f"], d["l"], float(d["p"]))),
    "bookTicker": ("btcusdt@bookTicker", lambda r, d: (r["update_id"], r["bid_price"],
                                                        r["ask_qty"])
                   == (d["u"], float(d["b"]), float(d["A"]))),
    "depthUpdate": ("btcusdt@depth@100ms", lambda r, d: (
        r["first_update_id"], r["final_update_id"], levels(r["bids"]), levels(r["asks"]),
        r["event_time"]) == (d["U"], d["u"], num(d["b"]), num(d["a"]), d["E"])),
    "depthPartial": ("btcusdt@depth20@100ms", lambda r, d: (
        r["last_update_id"], levels(r["bids"])) == (d["lastUpdateId"], num(d["bids"]))),
    "kline": ("btcusdt@kline_1s", lambda r, d: (r["open_time"], r["close"], r["closed"],
                                                 r["trades"])
              == (d["k"]["t"], float(d["k"]["c"]), d["k"]["x"], d["k"]["n"])),
    "miniTicker": ("btcusdt@miniTicker", lambda r, d: (r["event_time"], r["close"])
                   == (d["E"], float(d["c"]))),
}


def assert_stored_exactly(root: Path, sent: dict[str, list[dict[str, Any]]]) -> None:
    """Every kind on disk is, row for row, what the exchange sent on its stream."""
    for kind, (stream, same) in CHECKS.items():
        rows = read_kind(root, kind)
        assert len(rows) == len(sent[stream]) > 0, \
            f"{kind}: {len(rows)} rows on disk, {len(sent[stream])} sent"
        bad = [i for i, (r, d) in enumerate(zip(rows, sent[stream], strict=True))
               if not same(r, d)]
        assert bad == [], (kind, bad[:5])
        assert {r["symbol"] for r in rows} == {"BTCUSDT"}



class SentIndex:
    """The exchange's sent log by stream, each frame with its index in the log; parsed
    incrementally, so wait predicates can poll it cheaply."""

    def __init__(self, ex: LocalExchange) -> None:
        self.ex = ex
        self.by_stream: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.done = 0

    def __call__(self, stream: str) -> list[tuple[int, dict[str, Any]]]:
        log = self.ex.sent_log
        for pos in range(self.done, len(log)):
            frame = json.loads(log[pos][1])
            if "stream" in frame:
                self.by_stream[frame["stream"]].append((pos, frame["data"]))
        self.done = len(log)
        return self.by_stream[stream]

    def every_stream(self) -> bool:
        """A frame was sent on every stream CHECKS reads (so the totals the process
        reports have the same keys as the sent log)."""
        self("")
        return all(self.by_stream[stream] for stream, _ in CHECKS.values())


async def test_sigint_everything_sent_is_stored_exactly(tmp_path) -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=1500, seed=21, record_sent=True)
    async with LocalExchange(cfg) as ex:
        proc = Proc("--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--storage-dir",
                    str(tmp_path), *COMMON)
        try:
            await wait_until(lambda: len(ex.connections) == 1 and ex.stats.frames_sent > 3000,
                             30, "a few thousand frames sent")
            sent = await freeze_and_wait_received(ex, proc)  # freeze what was sent
            code = await proc.finish(signal.SIGINT)
        finally:
            if proc.p.poll() is None:
                proc.p.kill()
    assert code == 0, proc.read()[-2000:]
    assert "stopped cleanly" in proc.read()
    assert not list(tmp_path.rglob(".*"))  # every file finished, nothing half-written
    assert_stored_exactly(tmp_path, sent)
    ledger = read_kind(tmp_path, "_ledger")
    assert [e["what"] for e in ledger][:1] == ["connect"]


async def test_kill_9_keeps_finished_files_and_next_start_recovers_flushed_rows(
        tmp_path) -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=1500, seed=22, record_sent=True)
    async with LocalExchange(cfg) as ex:
        proc = Proc("--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--storage-dir",
                    str(tmp_path), "--set", "storage.rotate_mb=0.05", *COMMON)
        try:
            await wait_until(lambda: proc.on_disk() > 3000, 30, "rows flushed to disk")
            finished_before = {p: p.read_bytes() for p in tmp_path.rglob("*.parquet")}
            flushed = proc.on_disk()
            proc.p.kill()
            proc.p.wait(10)
        finally:
            if proc.p.poll() is None:
                proc.p.kill()
        sent = sent_by_stream(ex)
    assert finished_before, "size rotation should have finished some files before the kill"
    assert list(tmp_path.rglob(".*.arrows")), "the open segments are left for recovery"
    # every finished file is intact and readable right after the crash
    for path, data in finished_before.items():
        assert path.read_bytes() == data
    ds.dataset(tmp_path / "trade", format="parquet", partitioning="hive").to_table()

    # the next start recovers the open segments (no exchange needed: port 1 is closed)
    again = Proc("--ws-url", "ws://127.0.0.1:1", "--rest-url", "http://127.0.0.1:1",
                 "--storage-dir", str(tmp_path), "--set", "ui.status_interval_s=0.25")
    try:
        await wait_until(lambda: "REC" in again.read(), 30, "the restarted recorder")
        assert await again.finish(signal.SIGTERM) == 0
    finally:
        if again.p.poll() is None:
            again.p.kill()
    assert not list(tmp_path.rglob(".*.arrows"))
    stored = 0
    for kind, stream, key, wire in (("trade", "btcusdt@trade", "trade_id", "t"),
                                    ("aggTrade", "btcusdt@aggTrade", "agg_id", "a"),
                                    ("bookTicker", "btcusdt@bookTicker", "update_id", "u")):
        ids = [r[key] for r in read_kind(tmp_path, kind)]
        sent_ids = [d[wire] for d in sent[stream]]
        assert ids == sent_ids[:len(ids)], kind  # a clean prefix: no holes, no duplicates
        stored += len(ids)
    for kind in ("depthUpdate", "depthPartial", "kline", "miniTicker", "_ledger"):
        stored += len(read_kind(tmp_path, kind))
    assert stored >= flushed  # everything that was on disk at the kill survived


# the stream and wire id of every kind whose rows carry an id, for continuity checks
ID_STREAMS = {"trade": ("btcusdt@trade", "trade_id", "t"),
              "aggTrade": ("btcusdt@aggTrade", "agg_id", "a"),
              "bookTicker": ("btcusdt@bookTicker", "update_id", "u"),
              "depthUpdate": ("btcusdt@depth@100ms", "final_update_id", "u")}


async def test_sigusr1_off_then_on_stores_every_row_received_after_the_resume(tmp_path) -> None:
    """Headless SIGUSR1 twice: recording stops, then resumes. On disk, per stream, is what
    the exchange sent before the stop and everything it sent after the resume (its sent
    log is the oracle); frames received while off are not there."""
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=23, record_sent=True)
    async with LocalExchange(cfg) as ex:
        proc = Proc("--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--storage-dir",
                    str(tmp_path), *COMMON)
        try:
            await wait_until(lambda: proc.on_disk() > 100, 30, "recording")
            conn = ex.connections[0].id
            proc.p.send_signal(signal.SIGUSR1)
            await wait_until(lambda: "REC off" in proc.last_block(), 10, "REC off")
            off_at = len(ex.sent_log)  # sent from here on: received after the switch-off
            assert list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob(".*.arrows"))

            index = SentIndex(ex)

            def trades() -> list[tuple[int, dict[str, Any]]]:
                return index("btcusdt@trade")

            await wait_until(lambda: sum(p >= off_at for p, _ in trades()) >= 20, 20,
                             "20 trades sent while not recording")
            cut = next(i for i, (p, _) in enumerate(trades()) if p >= off_at) + 20
            cut_at = trades()[cut - 1][0]
            # one connection delivers in order: with trade #cut received, every frame
            # sent up to it was received while recording was off
            await wait_until(lambda: proc.totals().get("btcusdt@trade", 0) >= cut, 20,
                             "the process to receive the trades sent while off")
            proc.p.send_signal(signal.SIGUSR1)
            await wait_until(lambda: "REC off" not in proc.last_block()
                             and "REC" in proc.last_block(), 10, "recording again")
            resume_at = len(ex.sent_log)  # sent from here on: received after the resume
            await wait_until(lambda: sum(p >= resume_at for p, _ in trades()) >= 50
                             and index.every_stream(), 20, "50 trades sent after the resume")
            await freeze_and_wait_received(ex, proc)  # freeze what was sent
            assert [c.id for c in ex.connections] == [conn]  # no reconnect: in-order holds
            code = await proc.finish(signal.SIGINT)
            positions = {kind: index(stream)
                         for kind, (stream, _, _) in ID_STREAMS.items()}
        finally:
            if proc.p.poll() is None:
                proc.p.kill()
    assert code == 0, proc.read()[-2000:]
    assert not list(tmp_path.rglob(".*"))
    for kind, (_, column, wire) in ID_STREAMS.items():
        rows = read_kind(tmp_path, kind)
        stored = [r[column] for r in rows]
        sent_ids = [d[wire] for _, d in positions[kind]]
        after = [d[wire] for p, d in positions[kind] if p >= resume_at]
        assert after, f"{kind}: nothing sent after the resume"
        on_disk = set(stored)
        missing = [i for i in after if i not in on_disk]
        assert missing == [], (f"{kind}: {len(missing)} of {len(after)} rows sent after the "
                               f"resume are not on disk, first {missing[:3]}")
        while_off = [d[wire] for p, d in positions[kind] if off_at <= p <= cut_at]
        assert not on_disk & set(while_off), f"{kind}: rows received while off were stored"
        assert kind != "trade" or len(while_off) == 20  # the off window is real
        # on disk: a prefix of what was sent (before the stop), then a suffix (from before
        # the resume to the end): no hole, duplicate or reordering inside either run
        head = next((i for i, (a, b) in enumerate(zip(stored, sent_ids, strict=False))
                     if a != b), min(len(stored), len(sent_ids)))
        tail = len(stored) - head
        assert stored[head:] == sent_ids[len(sent_ids) - tail:], f"{kind}: not two runs"
        data = [d for _, d in positions[kind]]
        same = CHECKS[kind][1]
        bad = [i for i, (r, d) in enumerate(zip(rows, data[:head] + data[len(data) - tail:],
                                                strict=True)) if not same(r, d)]
        assert bad == [], (kind, bad[:5])


async def test_sigint_with_every_row_still_in_memory_stores_all_that_was_sent(
        tmp_path) -> None:
    """Nothing is flushed before the stop (long interval, huge batch): the final flush at
    SIGINT alone must write every frame the exchange sent, the last of each stream too."""
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=1000, seed=24, record_sent=True)
    async with LocalExchange(cfg) as ex:
        proc = Proc("--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--storage-dir",
                    str(tmp_path), *COMMON, "--set", "storage.flush_interval_s=300",
                    "--set", "storage.flush_rows=100000000")
        try:
            index = SentIndex(ex)
            await wait_until(lambda: len(ex.connections) == 1 and ex.stats.frames_sent > 1500
                             and index.every_stream(), 30, "frames sent on every stream")
            sent = await freeze_and_wait_received(ex, proc)  # freeze what was sent
            rec = re.findall(r"REC\s+([\d,]+)\s+rows\s+\(([\d,]+)\s+on\s+disk",
                             proc.last_block())
            assert rec and rec[-1][1] == "0", f"rows were flushed before the stop: {rec[-1:]}"
            assert int(rec[-1][0].replace(",", "")) >= sum(map(len, sent.values()))
            code = await proc.finish(signal.SIGINT)
        finally:
            if proc.p.poll() is None:
                proc.p.kill()
    assert code == 0, proc.read()[-2000:]
    assert proc.read().rstrip().endswith("stopped cleanly")
    assert not list(tmp_path.rglob(".*"))
    assert_stored_exactly(tmp_path, sent)
