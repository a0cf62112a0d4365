"""The recorder without sockets: partitions, rotation, durability, recovery, disk errors."""

from __future__ import annotations

import dataclasses
import errno
import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from engine.bus import Bus
from engine.clock import ManualClock
from engine.config import Storage
from engine.events import DepthUpdate, Trade
from engine.storage.recorder import Recorder
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
