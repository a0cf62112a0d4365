"""The recorder without sockets: partitions, rotation, durability, recovery, disk errors."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from engine.bus import Bus
from engine.clock import ManualClock
from engine.config import Storage
from engine.events import DepthUpdate, Ledger, LedgerEntry, Trade
from engine.storage import segments
from engine.storage.recorder import (
    LedgerBuffer,
    RawBuffer,
    Recorder,
    RecorderState,
    RecorderStatus,
)
from engine.storage.schemas import LEDGER_SCHEMA, RAW_SCHEMA
from engine.storage.segments import recover
from tests import factories

H = 3600 * 10**9
# 2026-11-26 22:30:00 UTC: 90 minutes before a UTC date boundary
T0 = 1_795_732_200 * 10**9


def trade(i: int, recv_ns: int, symbol: str = "BTCUSDT") -> Trade:
    """The ``i``-th trade of a run on connection 3, its event time its receive time."""
    return factories.trade(1000 + i, symbol=symbol, price=60000.0 + i / 100,
                           qty=0.001 * (i % 7 + 1), buyer_is_maker=bool(i % 2),
                           event_time=recv_ns // 10**6, recv_ns=recv_ns, conn=3)


def depth(i: int, recv_ns: int) -> DepthUpdate:
    """The ``i``-th diff (ids ``10i..10i+9``) on connection 3, with a removed bid level."""
    return factories.depth_update(10 * i, 10 * i + 9, bids=[(60000.0, 1.5), (59999.0, 0.0)],
                                  asks=[(60001.0, 2.0)] * (i % 3),
                                  event_time=recv_ns // 10**6, recv_ns=recv_ns, conn=3)


def storage(tmp_path: Path, **kw: object) -> Storage:
    return dataclasses.replace(Storage(directory=str(tmp_path / "data")), **kw)


def read(root: Path, kind: str) -> pa.Table:
    table = ds.dataset(root / kind, format="parquet", partitioning="hive").to_table()
    return table.sort_by("seq")


async def started(cfg: Storage, clock: ManualClock | None = None) -> tuple[Recorder, Bus]:
    rec = Recorder(cfg, clock or ManualClock(wall_ns=T0))
    bus = Bus()
    rec.attach(bus)
    bus.start()
    await rec.start()
    return rec, bus


async def test_rows_land_in_hive_partitions_and_read_back_exactly(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path))
    trades = [trade(i, T0 + i * 10**6) for i in range(500)]
    diffs = [depth(i, T0 + i * 10**6) for i in range(200)]
    for t, d in zip(trades, diffs + [None] * 300, strict=True):
        bus.publish(t)
        if d is not None:
            bus.publish(d)
    bus.publish(trade(0, T0, symbol="ETHUSDT"))
    await rec.stop()
    root = tmp_path / "data"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert files[0].startswith("depthUpdate/symbol=BTCUSDT/date=2026-11-26/depthUpdate-BTCUSDT-")
    assert any(f.startswith("trade/symbol=ETHUSDT/date=2026-11-26/") for f in files)
    assert not any(p.name.startswith(".") for p in root.rglob("*"))  # nothing left open
    t = read(root, "trade").filter(ds.field("symbol") == "BTCUSDT")
    assert t.column("trade_id").to_pylist() == [x.trade_id for x in trades]
    assert t.column("price").to_pylist() == [x.price for x in trades]
    assert t.column("trade_time").cast(pa.int64()).to_pylist() == [x.trade_time for x in trades]
    assert t.column("recv_time").cast(pa.int64()).to_pylist() == [x.recv_ns for x in trades]
    assert t.column("buyer_is_maker").to_pylist() == [x.buyer_is_maker for x in trades]
    d = read(root, "depthUpdate")
    assert d.column("final_update_id").to_pylist() == [x.final_update_id for x in diffs]
    assert [[(lv["price"], lv["qty"]) for lv in row] for row in d.column("asks").to_pylist()] \
        == [x.asks for x in diffs]
    meta = pq.ParquetFile(next((root / "trade").rglob("*.parquet"))).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    st = rec.status()
    assert st.rows_written == 701 and st.rows_pending == 0 and st.state == "off"


async def test_rotation_at_hour_and_date_boundaries(tmp_path) -> None:
    clock = ManualClock(wall_ns=T0)
    rec, bus = await started(storage(tmp_path), clock)
    # 22:30 -> 01:30 next day, one trade a minute, flushing every 10 minutes of clock
    for i in range(180):
        bus.publish(trade(i, T0 + i * 60 * 10**9))
        if i % 10 == 9:
            clock.advance(600)
            rec.flush()
            await rec.drain()
    await rec.stop()
    root = tmp_path / "data" / "trade" / "symbol=BTCUSDT"
    by_date = {p.name: sorted(f.name for f in p.glob("*.parquet")) for p in root.iterdir()}
    assert set(by_date) == {"date=2026-11-26", "date=2026-11-27"}
    assert len(by_date["date=2026-11-26"]) == 2  # 22:30-23:00, 23:00-24:00
    assert len(by_date["date=2026-11-27"]) == 2  # 00:00-01:00, 01:00-01:30
    table = read(tmp_path / "data", "trade")
    assert table.column("trade_id").to_pylist() == [1000 + i for i in range(180)]
    for f in root.rglob("*.parquet"):  # every file within one hour and on its own date
        ns = pq.read_table(f).column("recv_time").cast(pa.int64()).to_pylist()
        assert len({n // H for n in ns}) == 1
        assert f.parent.name == "date=2026-11-" + ("26" if ns[0] < T0 + 5400 * 10**9 else "27")


async def test_idle_segment_is_finished_when_its_hour_passes(tmp_path) -> None:
    clock = ManualClock(wall_ns=T0)
    rec, bus = await started(storage(tmp_path), clock)
    bus.publish(trade(0, T0))
    rec.flush()
    await rec.drain()
    assert not list((tmp_path / "data").rglob("*.parquet"))  # open, hidden
    assert len(list((tmp_path / "data").rglob(".*.arrows"))) == 1
    clock.advance(3600)
    rec.flush()
    await rec.drain()
    assert len(list((tmp_path / "data").rglob("*.parquet"))) == 1
    await rec.stop()


async def test_size_rotation(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, rotate_mb=0.01))
    for i in range(2000):
        bus.publish(trade(i, T0 + i))
        if i % 100 == 99:
            rec.flush()
    await rec.stop()
    files = list((tmp_path / "data").rglob("*.parquet"))
    assert len(files) > 3
    assert read(tmp_path / "data", "trade").num_rows == 2000


async def test_crash_leaves_recoverable_segments_and_recovery_never_loses_them(tmp_path) -> None:
    cfg = storage(tmp_path)
    rec, bus = await started(cfg)
    for i in range(300):
        bus.publish(trade(i, T0 + i))
    rec.flush()
    await rec.drain()
    for i in range(300, 350):
        bus.publish(trade(i, T0 + i))  # still in memory: lost by a crash (≤ one flush)
    # "kill -9": no stop(), no close; the open segment stays as a hidden IPC file
    root = tmp_path / "data"
    assert not list(root.rglob("*.parquet"))
    # readers see no half-written file
    assert ds.dataset(root / "trade", format="parquet", partitioning="hive").count_rows() == 0
    rec2, _ = await started(cfg)
    assert rec2.recovered_rows == 300
    table = read(root, "trade")
    assert table.column("trade_id").to_pylist() == [1000 + i for i in range(300)]
    await rec2.stop()
    rec._executor.shutdown()  # noqa: SLF001 - the "crashed" recorder's thread


async def test_torn_last_batch_is_dropped_complete_batches_recovered(tmp_path) -> None:
    cfg = storage(tmp_path)
    rec, bus = await started(cfg)
    for batch in range(3):
        for i in range(100):
            bus.publish(trade(batch * 100 + i, T0 + batch * 100 + i))
        rec.flush()
        await rec.drain()
    ipc = next((tmp_path / "data").rglob(".*.arrows"))
    data = ipc.read_bytes()
    ipc.write_bytes(data[:-50])  # the crash tore the last batch
    rec._executor.shutdown()  # noqa: SLF001
    results = recover(tmp_path / "data")
    assert [r.rows for r in results] == [200]
    assert read(tmp_path / "data", "trade").num_rows == 200


async def test_unwritable_directory_fails_clearly_and_the_bus_keeps_going(tmp_path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the directory should be")
    rec, bus = await started(storage(tmp_path))
    others: list[int] = []
    bus.subscribe(lambda e: others.append(e.trade_id), mode="inline")
    for i in range(100):
        bus.publish(trade(i, T0 + i))
    rec.flush()
    await rec.drain()
    st = rec.status()
    assert st.state == "failed"
    assert "writing to" in st.last_error and str(blocker) in st.last_error
    for i in range(100, 150):
        bus.publish(trade(i, T0 + i))
    assert len(others) == 150  # streaming continues
    assert rec.status().rows_dropped == 150  # the failed batch and all that came after
    await rec.stop()


async def test_disk_full_mid_recording(tmp_path, monkeypatch) -> None:
    rec, bus = await started(storage(tmp_path))
    bus.publish(trade(0, T0))
    rec.flush()
    await rec.drain()
    from engine.storage import segments

    def full(self, table):  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segments.Segment, "write", full)
    bus.publish(trade(1, T0 + 1))
    rec.flush()
    await rec.drain()
    assert rec.status().state == "failed" and "No space left" in rec.status().last_error
    monkeypatch.undo()
    await rec.set_enabled(True)  # the user retries (the TUI's `r`)
    bus.publish(trade(2, T0 + 2))
    await rec.stop()
    rec3, _ = await started(storage(tmp_path))  # the abandoned segment is recovered
    ids = read(tmp_path / "data", "trade").column("trade_id").to_pylist()
    assert sorted(ids) == [1000, 1002]  # the one row that hit the full disk is gone
    assert rec.status().rows_dropped == 1  # ... counted
    ledger = ds.dataset(tmp_path / "data" / "_ledger", format="parquet",
                        partitioning="hive").to_table(columns=["what", "detail"]).to_pylist()
    assert ledger == [{"what": "recorder_failed",  # ... and the window is in the ledger
                       "detail": "1 rows not recorded: writing to "
                                 f"{tmp_path / 'data'} failed: [Errno 28] No space left on device"}]
    await rec3.stop()


async def test_ledger_events_and_toggle_off_finishes_files(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path))
    bus.publish(factories.gap(1005, start_ns=T0, end_ns=T0 + 5, recv_ns=T0 + 5, conn=2,
                              detail="3 ids missing"))
    bus.publish(factories.book_ticker(7, bid_qty=2.0, ask_price=1.5, ask_qty=3.0,
                                      recv_ns=T0 + 6))
    await rec.set_enabled(False)
    assert len(list((tmp_path / "data").rglob("*.parquet"))) == 2
    bus.publish(trade(0, T0 + 7))  # not recording: ignored, not dropped
    assert rec.status().rows_dropped == 0
    events = ds.dataset(tmp_path / "data" / "_ledger", format="parquet",
                        partitioning="hive").to_table(
        columns=["what", "stream", "symbol", "first_missing", "last_good", "detail"]).to_pylist()
    assert events[0]["what"] == "gap" and events[0]["first_missing"] == 1005
    assert events[0]["last_good"] == 1004 and events[0]["stream"] == "btcusdt@trade"
    await rec.stop()


async def test_reconnect_gap_is_in_the_ledger_with_exact_ids(tmp_path) -> None:
    """Engine + exchange: a server-side drop loses trades; _events says exactly which."""
    from engine.engine import Engine
    from engine.exchange import ExchangeConfig, LocalExchange
    from tests.helpers import settings_for, wait_until

    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=500, seed=9)) as ex:
        settings = settings_for(ex, ("storage.enabled", True),
                                ("storage.directory", str(tmp_path / "data")),
                                ("storage.backfill", False),  # the holes stay holes here
                                backoff_initial_s=0.3, backoff_max_s=0.3)
        engine = Engine(settings)
        trades: list[Trade] = []
        engine.bus.subscribe(trades.append, kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: len(trades) > 50, 10, "trades")
        ex.faults.drop_all()  # trades keep happening while we are away
        await wait_until(lambda: engine.live.gate.gaps >= 1, 15, "gap after reconnect")
        await engine.stop()
    ids = [t.trade_id for t in trades]
    holes = [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]
    ledger = ds.dataset(tmp_path / "data" / "_ledger", format="parquet",
                        partitioning="hive").to_table(
        columns=["what", "stream", "first_missing", "last_good"]).to_pylist()
    whats = [e["what"] for e in ledger]
    assert whats[0] == "connect" and "disconnect" in whats
    assert whats.count("connect") >= 2
    gaps = [(e["last_good"], e["first_missing"]) for e in ledger
            if e["what"] == "gap" and e["stream"] == "btcusdt@trade"]
    assert gaps == [(a, a + 1) for a, _ in holes]
    stored = read(tmp_path / "data", "trade").column("trade_id").to_pylist()
    assert stored == ids


async def test_raw_capture_stores_every_frame_byte_identical(tmp_path) -> None:
    from engine.engine import Engine
    from engine.exchange import ExchangeConfig, LocalExchange
    from tests.helpers import settings_for, wait_until

    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=500, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, ("storage.enabled", True), ("storage.raw", True),
                                     ("storage.directory", str(tmp_path / "data"))))
        await engine.start()
        await wait_until(lambda: engine.status().frames > 1000, 10, "frames")
        ex.faults.stall(True)  # freeze what was sent
        conn = ex.connections[0].id
        sent = [text.encode() for cid, text in ex.sent_log if cid == conn]
        await wait_until(lambda: engine.status().frames == len(sent), 10, "all received")
        await engine.stop()
    raw = ds.dataset(tmp_path / "data" / "_raw", format="parquet",
                     partitioning="hive").to_table().sort_by("seq")
    assert raw.column("frame").to_pylist() == sent  # control replies included, as received
    assert raw.column("seq").to_pylist() == list(range(1, len(sent) + 1))


async def test_a_failure_in_the_writer_thread_changes_state_on_the_loop(tmp_path,
                                                                        monkeypatch) -> None:
    """Recording switched off, then finishing its files fails in the writer thread: the
    recorder goes FAILED (and subscribes again, to count what it drops) on the event
    loop; from the writer thread the bus would refuse the subscription."""
    import threading

    from engine.storage import segments

    rec, bus = await started(storage(tmp_path))
    bus.publish(trade(0, T0))
    rec.flush()
    await rec.drain()
    threads: list[str] = []
    subscribe = bus.subscribe

    def spy(*args: object, **kwargs: object) -> object:
        threads.append(threading.current_thread().name)
        return subscribe(*args, **kwargs)

    monkeypatch.setattr(bus, "subscribe", spy)

    def broken_close(self: segments.Segment) -> segments.SegmentResult:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(segments.Segment, "close", broken_close)
    await rec.set_enabled(False)  # OFF, then the close fails in the writer thread
    assert rec.status().state == "failed" and "I/O error" in rec.status().last_error
    assert threads == [threading.main_thread().name]  # the re-subscription, on the loop
    assert any(c.name == "recorder" for c in bus.consumers)
    bus.publish(trade(1, T0 + 1))
    assert rec.status().rows_dropped == 1  # what arrives while failed is counted
    monkeypatch.undo()
    await rec.stop()


async def test_rows_received_after_recording_is_switched_back_on_reach_disk(tmp_path) -> None:
    """Off, then on again (the TUI's ``r``, headless SIGUSR1): every row that arrives after
    the resume is stored, both the ones flushed while running and the ones still buffered
    at stop; the rows that arrived while off are not. Two off/on cycles, so a resume that
    works only once fails too."""
    rec, bus = await started(storage(tmp_path))
    stored: list[int] = []  # the fixture's own account of what must be on disk
    i = 0

    def publish(n: int, recording: bool) -> None:
        nonlocal i
        for _ in range(n):
            bus.publish(trade(i, T0 + i * 10**6))
            if recording:
                stored.append(1000 + i)
            i += 1

    publish(100, True)
    for _cycle in range(2):
        await rec.set_enabled(False)
        publish(40, False)
        await rec.set_enabled(True)
        publish(150, True)
        rec.flush()  # the first rows after the resume go through a periodic flush...
        await rec.drain()
        publish(60, True)  # ... and these through the final one at stop
    await rec.stop()
    root = tmp_path / "data"
    assert not list(root.rglob(".*"))  # every file finished
    table = read(root, "trade")
    ids = table.column("trade_id").to_pylist()
    missing = sorted(set(stored) - set(ids))
    assert missing == [], f"{len(missing)} rows received after a resume not on disk: " \
                          f"{missing[:5]}…"
    assert ids == stored  # nothing from the off windows, no duplicates, in order
    assert table.column("price").to_pylist() == [60000.0 + (n - 1000) / 100 for n in stored]


async def test_engine_set_recording_back_on_stores_what_the_exchange_sent_after(
        tmp_path) -> None:
    """``Engine.set_recording(False)`` then ``(True)`` against the local exchange: the trades
    on disk are exactly the ones the exchange sent before the switch-off and after the
    switch-on (its sent-frame log is the oracle)."""
    import json

    from engine.engine import Engine
    from engine.exchange import ExchangeConfig, LocalExchange
    from tests.helpers import settings_for, wait_until

    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=500, seed=12, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, ("storage.enabled", True),
                                     ("storage.directory", str(tmp_path / "data")),
                                     ("storage.flush_interval_s", 0.1)))
        seen: list[int] = []  # how many trades had arrived, to cut the sent log at
        engine.bus.subscribe(lambda t: seen.append(t.trade_id), kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: len(seen) > 50, 10, "trades while recording")
        off_at = len(seen)  # the switch-off takes effect before its first suspension
        await engine.set_recording(False)
        assert not engine.recording
        await wait_until(lambda: len(seen) > off_at + 30, 10, "trades while not recording")
        await engine.set_recording(True)  # no suspension: the cut below is exact
        on_at = len(seen)
        assert engine.recording
        await wait_until(lambda: len(seen) > on_at + 100, 10, "trades after the resume")
        ex.faults.stall(True)  # freeze what was sent
        sent = [json.loads(text)["data"]["t"] for _, text in ex.sent_log
                if '"stream":"btcusdt@trade"' in text]
        await wait_until(lambda: len(seen) == len(sent), 10, "every sent trade received")
        await engine.stop()
    assert seen == sent
    stored = read(tmp_path / "data", "trade").column("trade_id").to_pylist()
    after, on_disk = sent[on_at:], set(stored)
    missing = [t for t in after if t not in on_disk]
    assert missing == [], f"{len(missing)} of {len(after)} trades sent after the resume " \
                          f"not on disk, first {missing[:3]}"
    assert stored == sent[:off_at] + after


# -- behaviour pinned down by mutation testing (issue 13) ---------------------------------

S = 10**9
QUIET = 300.0  # flush_interval_s: no periodic flush runs during these tests
ENOSPC = OSError(errno.ENOSPC, "No space left on device")


def break_writes(monkeypatch: pytest.MonkeyPatch, calls: range,
                 error: OSError = ENOSPC) -> list[int]:
    """``Segment.write`` raises ``error`` on the calls (0-based) in ``calls``; the others
    write. Returns the rows of every write that went through, in order."""
    real, written, n = segments.Segment.write, [], itertools.count()

    def write(self: segments.Segment, table: pa.Table) -> None:
        if next(n) in calls:
            raise error
        real(self, table)
        written.append(table.num_rows)

    monkeypatch.setattr(segments.Segment, "write", write)
    return written


def ledger_rows(root: Path) -> list[dict[str, object]]:
    """Every ledger row on disk, all columns, times as epoch ns, in seq order."""
    table = ds.dataset(root / "_ledger", format="parquet", partitioning="hive").to_table(
        columns=LEDGER_SCHEMA.names).sort_by("seq")
    for name in ("recv_time", "start_time", "end_time"):
        table = table.set_column(table.schema.get_field_index(name), name,
                                 table.column(name).cast(pa.int64()))
    return table.to_pylist()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def failed_window(n: int, error: str, start_ns: int, end_ns: int, seq: int) -> dict[str, object]:
    """The ledger row a resume writes for a failure window (hand-built)."""
    return {"recv_time": end_ns, "conn_id": 0, "seq": seq, "what": "recorder_failed",
            "stream": "", "symbol": "", "first_missing": -1, "last_good": -1,
            "start_time": start_ns, "end_time": end_ns,
            "detail": f"{n} rows not recorded: {error}"[:500], "last_missing": -1}


async def test_a_new_recorder_is_off_unsubscribed_and_counts_nothing(tmp_path) -> None:
    rec = Recorder(storage(tmp_path, raw=True))
    bus = Bus()
    rec.attach(bus)
    assert rec.status() == RecorderStatus(
        state=RecorderState.OFF, directory=str(tmp_path / "data"), rows_written=0,
        rows_pending=0, rows_dropped=0, files_finished=0, bytes_written=0, recovered_rows=0,
        last_error="", raw=True)
    assert [c.name for c in bus.consumers] == []  # off costs the feed nothing
    rec.on_raw([b"{}"], T0, 1)
    assert rec.status().rows_pending == 0 and rec.written_max == {}


async def test_attach_after_start_subscribes_and_records(tmp_path) -> None:
    rec = Recorder(storage(tmp_path, flush_interval_s=QUIET), ManualClock(wall_ns=T0))
    await rec.start()
    assert rec.state == "recording"
    assert "recorder-flush" in {t.get_name() for t in asyncio.all_tasks()}
    bus = Bus()
    bus.start()
    rec.attach(bus)
    assert [c.name for c in bus.consumers] == ["recorder"]
    bus.publish(trade(0, T0))
    assert rec.status().rows_pending == 1
    await rec.stop()
    assert read(tmp_path / "data", "trade").column("trade_id").to_pylist() == [1000]
    assert [c.name for c in bus.consumers] == []


async def test_start_disabled_stays_off_until_switched_on_and_ledgers_no_failure(
        tmp_path) -> None:
    rec = Recorder(storage(tmp_path, flush_interval_s=QUIET), ManualClock(wall_ns=T0))
    bus = Bus()
    rec.attach(bus)
    bus.start()
    await rec.start(enabled=False)
    assert rec.state == "off" and [c.name for c in bus.consumers] == []
    bus.publish(trade(0, T0))
    await rec.set_enabled(True)
    await rec.set_enabled(True)  # already on: a no-op, nothing for the ledger
    bus.publish(trade(1, T0 + 1))
    await rec.stop()
    assert read(tmp_path / "data", "trade").column("trade_id").to_pylist() == [1001]
    assert not (tmp_path / "data" / "_ledger").exists()
    assert rec.status().rows_dropped == 0


async def test_the_default_clock_is_wall_time(tmp_path) -> None:
    """No clock given: a segment whose hour passed (by the system clock) is finished at
    the next flush."""
    import time

    rec = Recorder(storage(tmp_path, flush_interval_s=QUIET))
    bus = Bus()
    rec.attach(bus)
    bus.start()
    await rec.start()
    bus.publish(trade(0, time.time_ns() - 2 * H))
    rec.flush()
    await rec.drain()
    assert len(list((tmp_path / "data").rglob("*.parquet"))) == 1
    await rec.stop()


async def test_ledger_rows_keep_every_field(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    bus.publish(trade(0, T0))
    bus.publish(LedgerEntry(what=Ledger.GAP, stream="btcusdt@trade", symbol="BTCUSDT",
                            first_missing=1005, last_good=1004, start_ns=T0 + 1,
                            end_ns=T0 + 6, detail="3 ids missing", last_missing=1007,
                            recv_ns=T0 + 7, conn=4))
    await rec.stop()
    assert ledger_rows(tmp_path / "data") == [
        {"recv_time": T0 + 7, "conn_id": 4, "seq": 2, "what": "gap",
         "stream": "btcusdt@trade", "symbol": "BTCUSDT", "first_missing": 1005,
         "last_good": 1004, "start_time": T0 + 1, "end_time": T0 + 6,
         "detail": "3 ids missing", "last_missing": 1007}]
    assert names(tmp_path / "data" / "_ledger" / "date=2026-11-26") == [
        "ledger-20261126T223000Z-2.parquet"]


def test_buffers_take_empty_tables_and_empty_themselves() -> None:
    led = LedgerBuffer()
    assert led.take().equals(LEDGER_SCHEMA.empty_table())
    led.append(LedgerEntry(what=Ledger.CONNECT, recv_ns=5, conn=1))
    assert len(led) == 1 and led.recv_times() == [5]
    table = led.take()
    assert len(led) == 0 and table.column("seq").to_pylist() == [0]  # seq defaults to 0
    raw = RawBuffer()
    assert raw.take().equals(RAW_SCHEMA.empty_table()) and len(raw) == 0
    with pytest.raises(TypeError, match=r"^raw frames are appended by Recorder\.on_raw, not as "
                                         r"events$"):
        raw.append(trade(0, T0))


async def test_raw_frames_are_stored_as_received_with_their_own_seq(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, raw=True, flush_interval_s=QUIET))
    bus.publish(trade(0, T0))  # market rows have their own seq
    rec.on_raw([b'{"a":1}', bytearray(b'{"b":2}')], T0 + 1, 4)
    rec.on_raw([], T0 + 2, 4)
    rec.on_raw([memoryview(b'{"c":3}')], T0 + 3, 5)
    assert rec.status().rows_pending == 4 and rec.status().raw
    await rec.set_enabled(False)
    rec.on_raw([b"off"], T0 + 4, 5)  # not recording: not taken
    await rec.stop()
    folder = tmp_path / "data" / "_raw" / "date=2026-11-26"
    assert names(folder) == ["raw-20261126T223000Z-2.parquet"]
    raw = pq.read_table(folder / "raw-20261126T223000Z-2.parquet")
    assert raw.schema.equals(RAW_SCHEMA)
    raw = raw.set_column(0, "recv_time", raw.column(0).cast(pa.int64()))
    assert raw.to_pydict() == {"recv_time": [T0 + 1, T0 + 1, T0 + 3], "conn_id": [4, 4, 5],
                               "seq": [1, 2, 3], "frame": [b'{"a":1}', b'{"b":2}', b'{"c":3}']}


async def test_flush_rows_triggers_a_flush_on_the_next_loop_turn(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, flush_rows=3, flush_interval_s=QUIET))
    for round_ in range(2):  # twice: the trigger re-arms after each flush
        for i in range(2):
            bus.publish(trade(3 * round_ + i, T0 + 3 * round_ + i))
        await asyncio.sleep(0)  # one loop turn: nothing scheduled below the threshold
        assert rec.status().rows_pending == 2
        bus.publish(trade(3 * round_ + 2, T0 + 3 * round_ + 2))
        assert rec.status().rows_pending == 3  # flushed by a callback, not inline
        await asyncio.sleep(0)
        assert rec.status().rows_pending == 0
        await rec.drain()
        assert rec.status().rows_written == 3 * (round_ + 1)
    await rec.stop()


async def test_the_periodic_flush_writes_without_being_asked(tmp_path) -> None:
    from tests.helpers import wait_until

    rec, bus = await started(storage(tmp_path, flush_interval_s=0.05))
    for round_ in range(2):
        bus.publish(trade(round_, T0 + round_))
        await wait_until(lambda n=round_ + 1: rec.status().rows_written == n, 5,
                         f"periodic flush {round_ + 1}")
    await rec.stop()


async def test_a_failure_reaches_the_loop_without_a_drain(tmp_path, monkeypatch) -> None:
    from tests.helpers import wait_until

    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    break_writes(monkeypatch, range(10**9))
    bus.publish(trade(0, T0))
    rec.flush()  # as the periodic flush does: nobody waits for the writer
    await wait_until(lambda: rec.state == "failed", 5, "the writer's failure on the loop")
    assert rec.status().rows_dropped == 1
    monkeypatch.undo()
    await rec.stop()
    assert rec.state == "failed"  # stopping does not hide the failure


async def test_a_partial_write_failure_counts_exactly_the_rows_not_written(
        tmp_path, monkeypatch, caplog) -> None:
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    written = break_writes(monkeypatch, range(2, 10**9))  # the third file hits a full disk
    for i in range(2):
        bus.publish(trade(i, T0 + i))
    for i in range(3):
        bus.publish(trade(i, T0 + i, symbol="ETHUSDT"))
    for i in range(4):
        bus.publish(depth(i, T0 + i))
    rec.flush()
    bus.publish(trade(2, T0 + 2))  # buffered before the loop hears of the failure ...
    bus.publish(trade(3, T0 + 3))
    with caplog.at_level("ERROR", logger="binance_live.recorder"):
        await rec.drain()
    error = f"writing to {tmp_path / 'data'} failed: [Errno 28] No space left on device"
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", f"recording stopped: {error}")]
    st = rec.status()
    assert written == [2, 3]
    assert (st.state, st.rows_written, st.rows_dropped, st.rows_pending, st.last_error) == (
        "failed", 5, 4, 2, error)
    assert rec.flush() is None  # ... and dropped (counted) at the next flush
    st = rec.status()
    assert (st.rows_dropped, st.rows_pending, st.rows_written) == (6, 0, 5)
    monkeypatch.undo()
    await rec.stop()


async def test_batches_already_queued_behind_a_failed_one_are_dropped(
        tmp_path, monkeypatch) -> None:
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    written = break_writes(monkeypatch, range(1))  # only the first write fails
    for i in range(3):
        bus.publish(trade(i, T0 + i))
    first = rec.flush()
    for i in range(3, 5):
        bus.publish(trade(i, T0 + i))
    second = rec.flush()
    assert first is not None and second is not None
    second.result(timeout=5)  # both batches done in the writer before the loop hears
    await rec.drain()
    st = rec.status()
    assert written == [] and (st.state, st.rows_written, st.rows_dropped) == ("failed", 0, 5)
    # the status names the real cause, not a generic text from the batch queued behind it
    assert st.last_error == (f"writing to {tmp_path / 'data'} failed: "
                             "[Errno 28] No space left on device")
    monkeypatch.undo()
    await rec.stop()


async def test_each_resume_ledgers_its_own_failure_window(tmp_path, monkeypatch) -> None:
    """Two failures, two resumes: each ``recorder_failed`` row spans from the first row
    not written to the resume and counts only the rows of its own window; a long error
    is cut to the ledger's detail bound."""
    clock = ManualClock(wall_ns=T0 + 100 * S)
    cfg = storage(tmp_path, flush_interval_s=QUIET)
    root = tmp_path / "data"
    rec, bus = await started(cfg, clock)
    long = OSError(errno.ENOSPC, "No space left on device " + "x" * 600)
    break_writes(monkeypatch, range(10**9), long)
    bus.publish(trade(0, T0 + 9))
    bus.publish(trade(1, T0 + 5, symbol="ETHUSDT"))  # the first row of the oldest stream
    bus.publish(trade(2, T0 + 12))
    bus.publish(trade(3, T0 + 7, symbol="ETHUSDT"))
    rec.flush()
    await rec.drain()
    error1 = f"writing to {root} failed: [Errno 28] No space left on device " + "x" * 600
    for i in range(4, 6):
        bus.publish(trade(i, T0 + i))  # dropped while failed
    clock.advance(10)
    monkeypatch.undo()
    await rec.set_enabled(True)
    st = rec.status()
    assert (st.state, st.last_error, st.rows_dropped) == ("recording", "", 6)
    rec.flush()
    await rec.drain()  # the first window's row is in an open segment
    break_writes(monkeypatch, range(10**9))
    bus.publish(trade(6, T0 + 200 * S))
    bus.publish(trade(7, T0 + 201 * S))
    rec.flush()
    await rec.drain()
    assert rec.status().rows_dropped == 8
    bus.publish(trade(8, T0 + 202 * S))
    clock.advance(100)
    monkeypatch.undo()
    await rec.set_enabled(True)
    await rec.stop()
    rec2, _ = await started(cfg)  # the abandoned segment holding the first row
    await rec2.stop()
    error2 = f"writing to {root} failed: [Errno 28] No space left on device"
    assert ledger_rows(root) == [failed_window(6, error1, T0 + 5, T0 + 110 * S, seq=5),
                                 failed_window(3, error2, T0 + 200 * S, T0 + 210 * S, seq=8)]
    assert len(ledger_rows(root)[0]["detail"]) == 500  # type: ignore[arg-type]


async def test_a_failure_with_no_rows_in_hand_starts_its_window_at_the_failure(
        tmp_path, monkeypatch) -> None:
    """Finishing an idle segment fails at a flush that carries no rows: the window starts
    when the failure happened."""
    clock = ManualClock(wall_ns=T0)
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET), clock)
    bus.publish(trade(0, T0))
    rec.flush()
    await rec.drain()

    def broken_close(self: segments.Segment) -> segments.SegmentResult:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(segments.Segment, "close", broken_close)
    clock.advance(3600)  # the segment's hour has passed
    rec.flush()
    await rec.drain()
    error = f"writing to {tmp_path / 'data'} failed: [Errno 5] I/O error"
    st = rec.status()
    assert (st.state, st.last_error, st.rows_dropped, st.rows_written) == (
        "failed", error, 0, 1)
    bus.publish(trade(1, T0 + 1))
    clock.advance(60)
    monkeypatch.undo()
    await rec.set_enabled(True)
    await rec.stop()
    assert ledger_rows(tmp_path / "data") == [
        failed_window(1, error, T0 + 3600 * S, T0 + 3660 * S, seq=2)]


async def test_finishing_files_fails_clearly_and_the_resume_ledgers_it(
        tmp_path, monkeypatch) -> None:
    clock = ManualClock(wall_ns=T0 + 50 * S)
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET), clock)
    bus.publish(trade(0, T0))

    def broken_close(self: segments.Segment) -> segments.SegmentResult:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(segments.Segment, "close", broken_close)
    await rec.set_enabled(False)
    error = f"finishing files in {tmp_path / 'data'} failed: [Errno 5] I/O error"
    st = rec.status()
    assert (st.state, st.last_error, st.rows_dropped, st.rows_written) == (
        "failed", error, 0, 1)
    clock.advance(7)
    monkeypatch.undo()
    await rec.set_enabled(True)
    await rec.stop()
    assert ledger_rows(tmp_path / "data") == [
        failed_window(0, error, T0 + 50 * S, T0 + 57 * S, seq=2)]


async def test_a_failed_recovery_fails_the_recorder_at_start(tmp_path, monkeypatch) -> None:
    """Recovery runs on the writer thread (every file operation does); when it fails the
    recorder starts FAILED, counts what it drops and ledgers the window at the resume."""
    import threading

    from engine.storage import recorder

    threads: list[str] = []

    def denied(root: Path) -> list[segments.SegmentResult]:
        threads.append(threading.current_thread().name)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(recorder, "recover", denied)
    clock = ManualClock(wall_ns=T0)
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET), clock)
    error = f"recovery in {tmp_path / 'data'} failed: [Errno 13] Permission denied"
    st = rec.status()
    assert (st.state, st.last_error, st.rows_dropped, st.recovered_rows) == (
        "failed", error, 0, 0)
    assert threads == ["recorder_0"]
    bus.publish(trade(0, T0))
    assert rec.status().rows_dropped == 1  # subscribed, to count what it cannot record
    clock.advance(5)
    await rec.set_enabled(True)
    await rec.stop()
    assert ledger_rows(tmp_path / "data") == [failed_window(1, error, T0, T0 + 5 * S, seq=1)]


async def test_a_recorder_switched_on_before_start_records_and_reports_failures(
        tmp_path, monkeypatch) -> None:
    """``set_enabled(True)`` before ``start()`` (no event loop known yet): crossing
    ``flush_rows`` schedules nothing and raises nothing into the bus; explicit flushes
    write, and a write failure is reported by ``drain``."""
    rec = Recorder(storage(tmp_path, flush_rows=2, flush_interval_s=QUIET),
                   ManualClock(wall_ns=T0))
    bus = Bus()
    rec.attach(bus)
    bus.start()
    await rec.set_enabled(True)
    for i in range(3):
        bus.publish(trade(i, T0 + i))
    assert rec.status().rows_pending == 3
    rec.flush()
    await rec.drain()
    assert rec.status().rows_written == 3
    break_writes(monkeypatch, range(10**9))
    bus.publish(trade(3, T0 + 3))
    rec.flush()
    await rec.drain()
    st = rec.status()
    assert (st.state, st.rows_written, st.rows_dropped) == ("failed", 3, 1)
    assert [(c.name, c.errors) for c in bus.consumers] == [("recorder", 0)]
    monkeypatch.undo()
    await rec.stop()


async def test_written_max_is_the_largest_id_on_disk_per_stream(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    for i in (7, 9, 8):
        bus.publish(factories.trade(i, recv_ns=T0 + i))
    bus.publish(factories.agg_trade(0, symbol="ETHUSDT", recv_ns=T0))
    bus.publish(depth(1, T0))
    rec.flush()
    await rec.drain()
    bus.publish(factories.trade(4, recv_ns=T0 + 20))  # a lower id later does not lower it
    rec.flush()
    await rec.drain()
    assert rec.written_max == {("trade", "BTCUSDT"): 9, ("aggTrade", "ETHUSDT"): 0}
    await rec.stop()


async def test_status_counts_finished_files_and_their_bytes_on_disk(tmp_path) -> None:
    cfg = storage(tmp_path, flush_interval_s=QUIET)
    root = tmp_path / "data"
    rec, bus = await started(cfg)
    for i in range(50):
        bus.publish(trade(i, T0 + i))
    bus.publish(depth(0, T0))
    rec.flush()
    await rec.drain()
    open_files = list(root.rglob(".*.arrows"))
    st = rec.status()
    assert (st.files_finished, st.rows_written) == (0, 51) and len(open_files) == 2
    assert st.bytes_written == sum(f.stat().st_size for f in open_files)
    await rec.stop()
    done = list(root.rglob("*.parquet"))
    st = rec.status()
    assert st.files_finished == len(done) == 2
    assert st.bytes_written == sum(f.stat().st_size for f in done)
    # a crash leaves one open segment: the next start finishes and counts it
    rec2, bus2 = await started(cfg)
    bus2.publish(trade(50, T0 + 50))
    rec2.flush()
    await rec2.drain()
    rec2._executor.shutdown()  # noqa: SLF001 - "kill -9"
    rec3, _ = await started(cfg)
    recovered = [f for f in root.rglob("*.parquet") if f not in done]
    st = rec3.status()
    assert (st.recovered_rows, st.files_finished, st.rows_written) == (1, 1, 0)
    assert st.bytes_written == recovered[0].stat().st_size
    await rec3.stop()


async def test_file_names_count_up_and_skip_names_already_taken(tmp_path) -> None:
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    folder = tmp_path / "data" / "trade" / "symbol=BTCUSDT" / "date=2026-11-26"
    folder.mkdir(parents=True)
    (folder / "trade-BTCUSDT-20261126T223000Z-1.parquet").write_bytes(b"taken")
    (folder / ".trade-BTCUSDT-20261126T223000Z-2.parquet.arrows").write_bytes(b"open")
    bus.publish(trade(0, T0))
    bus.publish(trade(1, T0 + H))  # 23:30: the next hour, the next file
    await rec.stop()
    assert names(folder) == [".trade-BTCUSDT-20261126T223000Z-2.parquet.arrows",
                             "trade-BTCUSDT-20261126T223000Z-1.parquet",
                             "trade-BTCUSDT-20261126T223000Z-3.parquet",
                             "trade-BTCUSDT-20261126T233000Z-4.parquet"]
    assert (folder / "trade-BTCUSDT-20261126T223000Z-1.parquet").read_bytes() == b"taken"


async def test_size_rotation_happens_exactly_at_rotate_mb(tmp_path) -> None:
    """A segment rotates once it holds ``rotate_mb`` (MiB); one byte short, it does not.
    The size of one flushed batch is measured on disk first."""
    def batch(bus: Bus, first: int) -> None:
        for i in range(first, first + 20):
            bus.publish(trade(i, T0 + i))

    probe, bus = await started(storage(tmp_path / "probe", flush_interval_s=QUIET))
    batch(bus, 0)
    probe.flush()
    await probe.drain()
    size = next((tmp_path / "probe").rglob(".*.arrows")).stat().st_size
    await probe.stop()
    for name, limit, files in (("at", size, 2), ("above", size + 1, 1)):
        rec, bus = await started(storage(tmp_path / name, rotate_mb=limit / 2**20,
                                         flush_interval_s=QUIET))
        batch(bus, 0)
        rec.flush()
        await rec.drain()
        batch(bus, 20)
        await rec.stop()
        tables = sorted((pq.read_table(f) for f in (tmp_path / name).rglob("*.parquet")),
                        key=lambda t: t.column("seq")[0].as_py())
        assert [t.num_rows for t in tables] == [40 // files] * files, name


async def test_a_batch_is_cut_at_hour_boundaries_even_out_of_order(tmp_path) -> None:
    """One flush whose rows cross 23:00 (in order, and out of order with the first and
    last row in the same hour, the odd one out in the middle or second to last) goes to
    one file per hour, oldest hour first."""
    m = 60 * S
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET),
                             ManualClock(wall_ns=T0 + 50 * m))
    for i, at in enumerate((10 * m, 40 * m, 50 * m)):  # 22:40, 23:10, 23:20
        bus.publish(trade(i, T0 + at))
    for i, at in enumerate((45 * m, 15 * m, 55 * m), start=3):  # 23:15, 22:45, 23:25
        bus.publish(trade(i, T0 + at, symbol="ETHUSDT"))
    for i, at in enumerate((10 * m, 40 * m, 20 * m), start=6):  # 22:40, 23:10, 22:50
        bus.publish(trade(i, T0 + at, symbol="BNBUSDT"))
    await rec.stop()
    root = tmp_path / "data" / "trade"
    got = {}
    for sym in ("BTCUSDT", "ETHUSDT", "BNBUSDT"):
        folder = root / f"symbol={sym}" / "date=2026-11-26"
        got[sym] = {f: pq.read_table(folder / f).column("trade_id").to_pylist()
                    for f in names(folder)}
    assert got == {
        "BTCUSDT": {"trade-BTCUSDT-20261126T224000Z-1.parquet": [1000],
                    "trade-BTCUSDT-20261126T231000Z-2.parquet": [1001, 1002]},
        "ETHUSDT": {"trade-ETHUSDT-20261126T224500Z-3.parquet": [1004],
                    "trade-ETHUSDT-20261126T231500Z-4.parquet": [1003, 1005]},
        "BNBUSDT": {"trade-BNBUSDT-20261126T224000Z-5.parquet": [1006, 1008],
                    "trade-BNBUSDT-20261126T231000Z-6.parquet": [1007]}}


async def test_one_named_writer_thread_writes_the_batches_one_at_a_time(
        tmp_path, monkeypatch) -> None:
    """Two flushes queued back to back are written in turn by the one ``recorder`` thread
    (segments are not safe for concurrent writers). The first write holds on for a
    moment: a second writer thread would start the next batch meanwhile."""
    import threading

    real, calls = segments.Segment.write, itertools.count()
    lock, second = threading.Lock(), threading.Event()
    active, peak, seen = [0], [0], set()  # writes in progress, their most, thread names

    def write(self: segments.Segment, table: pa.Table) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            seen.add(threading.current_thread().name)
        if next(calls) == 0:
            second.wait(0.1)
        else:
            second.set()
        real(self, table)
        with lock:
            active[0] -= 1

    monkeypatch.setattr(segments.Segment, "write", write)
    rec, bus = await started(storage(tmp_path, flush_interval_s=QUIET))
    bus.publish(trade(0, T0))
    rec.flush()
    bus.publish(trade(1, T0 + 1, symbol="ETHUSDT"))
    rec.flush()
    await rec.drain()
    assert (peak[0], seen) == (1, {"recorder_0"})
    assert rec.status().rows_written == 2
    await rec.stop()
