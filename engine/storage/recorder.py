"""The Parquet recorder: a lossless bus consumer with all file I/O off the event loop.

On the loop, each event is appended to an in-memory column buffer (an ``inline``
consumer: no queue, so nothing can be dropped). Every ``flush_interval_s`` (or sooner,
after ``flush_rows`` rows) the buffers are swapped out in O(1) and handed to one
writer thread, which builds the Arrow tables, appends them to the open segments
(``engine/storage/segments.py``), and rotates segments by hour (``rotate_minutes``), by
UTC date and by size (``rotate_mb``). Stopping flushes everything and finishes every file.

Durability: Ctrl-C/SIGTERM lose nothing. After kill -9, every finished file is intact
and rows already flushed to an open segment are recovered into a finished file at the
next start; only rows still in memory (at most one flush interval) are lost. A write
error (disk full, permission denied) puts the recorder in the ``failed`` state with the
error visible in status; streaming continues and further rows are counted as dropped.

Threads: the writer thread only writes files and reports what happened; every state
change (and so every bus subscription change) happens on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from engine.bus import Bus, Consumer, Mode
from engine.clock import SYSTEM, Clock
from engine.config import Storage
from engine.events import MAX_DETAIL, Ledger, LedgerEntry
from engine.storage.layout import LEDGER_DIR, RAW_DIR, file_name, in_progress_path, partition_dir
from engine.storage.schemas import LEDGER_SCHEMA, NS, RAW_SCHEMA, RECORDED_TYPES, ColumnBuffer
from engine.storage.segments import Segment, SegmentResult, recover
from engine.tasks import TaskSet

log = logging.getLogger("binance_live.recorder")

NS_PER_S = 1_000_000_000
DAY_NS = 86_400 * NS_PER_S


class RecorderState(StrEnum):
    OFF = "off"
    RECORDING = "recording"
    FAILED = "failed"


@dataclass(frozen=True)
class RecorderStatus:
    state: RecorderState
    directory: str
    rows_written: int  # rows handed to files (open segments included)
    rows_pending: int  # rows in memory, not yet flushed
    rows_dropped: int  # rows received while failed
    files_finished: int
    bytes_written: int
    recovered_rows: int
    last_error: str
    raw: bool


class LedgerBuffer:
    """Column buffer for the continuity ledger (``_ledger``)."""

    schema = LEDGER_SCHEMA

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def append(self, e: LedgerEntry, seq: int = 0) -> None:
        self.rows.append((e.recv_ns, e.conn, seq, str(e.what), e.stream, e.symbol,
                          e.first_missing, e.last_good, e.start_ns, e.end_ns, e.detail,
                          e.last_missing))

    def recv_times(self) -> list[int]:
        return [r[0] for r in self.rows]

    def take(self) -> pa.Table:
        cols: list[Any] = (
            list(zip(*self.rows, strict=True))  # pragma: no mutate (equivalent: rows all 12 wide)
            if self.rows else [[]] * len(self.schema))
        self.rows = []
        return pa.Table.from_arrays(
            [pa.array(c, f.type) for c, f in  # pragma: no mutate (equivalent: schema= casts)
             zip(cols, self.schema, strict=True)],  # pragma: no mutate (equivalent: same lengths)
            schema=self.schema)


class RawBuffer:
    """Raw frames exactly as received (``_raw``), for archival and exact replay."""

    schema = RAW_SCHEMA

    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.recv: list[int] = []
        self.conn: list[int] = []
        self.seq: list[int] = []
        self.frames: list[bytes] = []

    def __len__(self) -> int:
        return len(self.recv)

    def append(self, event: Any, seq: int = 0) -> None:  # pragma: no mutate (equivalent: raises)
        raise TypeError("raw frames are appended by Recorder.on_raw, not as events")

    def recv_times(self) -> list[int]:
        return self.recv

    def take(self) -> pa.Table:
        table = pa.Table.from_arrays(
            [pa.array(self.recv, NS),  # pragma: no mutate (equivalent: schema= casts)
             pa.array(self.conn, pa.int64()),  # pragma: no mutate (equivalent: schema= casts)
             pa.array(self.seq, pa.int64()),  # pragma: no mutate (equivalent: schema= casts)
             pa.array(self.frames, pa.binary())],  # pragma: no mutate (equivalent: schema= casts)
            schema=self.schema)
        self._clear()
        return table


Buffer = ColumnBuffer | LedgerBuffer | RawBuffer
_ID_COLUMNS = {"trade": "trade_id", "aggTrade": "agg_id"}
Key = tuple[str, str]  # (kind folder, symbol or "")


@dataclass(frozen=True)
class _Failure:
    """What the writer thread reports when a write failed (handled on the loop)."""

    message: str
    since_ns: int  # receive time of the first row not written (0: unknown)
    rows_lost: int


class Recorder:
    def __init__(self, storage: Storage, clock: Clock = SYSTEM) -> None:
        self.cfg = storage
        self.root = Path(storage.directory)
        self.clock = clock
        self._bus: Bus | None = None
        self._consumer: Consumer | None = None
        self._state = RecorderState.OFF
        self.last_error = ""
        self.rows_written = 0
        self.rows_dropped = 0
        # when the current failure began (ledgered at the retry); _fail sets it before use
        self._failed_at_ns = 0  # pragma: no mutate (equivalent: set before any read)
        # the largest trade/aggTrade id on disk per (kind, symbol): after a storage
        # failure the ids the recorder dropped are fetched again (engine.source.live)
        self.written_max: dict[Key, int] = {}
        self._dropped_before_fail = 0  # pragma: no mutate (equivalent: set before any read)
        self.files_finished = 0
        self.bytes_finished = 0
        self.recovered_rows = 0
        self._buffers: dict[Key, Buffer] = {}
        self._pending = 0
        self._seq = 0
        self._raw_seq = 0
        self._segments: dict[Key, tuple[Segment, tuple[int, int]]] = {}  # key -> (seg, bucket)
        # writer thread: drop batches until recording resumes
        self._writer_failed = False  # pragma: no mutate (equivalent: None is falsy too)
        # the failure's own message, for batches queued behind it
        self._writer_error = ""  # pragma: no mutate (equivalent: read only after _broken sets it)
        self._names = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder")
        self._inflight: list[Future[_Failure | None]] = []
        self._flush_soon: asyncio.Handle | None = None
        self._tasks = TaskSet("recorder")  # pragma: no mutate (equivalent: name nothing reads)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rotate_ns = int(storage.rotate_minutes * 60 * NS_PER_S)
        self._rotate_bytes = int(storage.rotate_mb * 1024 * 1024)

    # -- wiring --------------------------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Take events from ``bus`` while recording (or failed: drops are counted); while
        off the recorder is not subscribed at all, so it costs the feed nothing."""
        self._bus = bus
        self._set_state(self._state)

    @property
    def state(self) -> RecorderState:
        return self._state

    def _set_state(self, value: RecorderState) -> None:
        """The only place the state changes; on the event loop (bus subscriptions)."""
        self._state = value
        bus = self._bus
        if bus is None:
            return
        if value is not RecorderState.OFF and self._consumer is None:
            self._consumer = bus.subscribe(self.on_event, kinds=[*RECORDED_TYPES, LedgerEntry],
                                           name="recorder", mode=Mode.INLINE)
        elif value is RecorderState.OFF and self._consumer is not None:
            bus.unsubscribe(self._consumer)
            self._consumer = None

    async def start(self, enabled: bool = True) -> None:
        """Recover what a crash left open, then start recording (if enabled)."""
        self._loop = asyncio.get_running_loop()
        try:
            results = await self._loop.run_in_executor(self._executor, recover, self.root)
        except OSError as exc:
            self._fail(_Failure(  # pragma: no mutate (equivalent: since_ns None is falsy like 0)
                f"recovery in {self.root} failed: {exc}", 0, 0))
            results = []
        self.recovered_rows = sum(r.rows for r in results)
        self._note_finished(results)
        if enabled and self.state is not RecorderState.FAILED:
            self._set_state(RecorderState.RECORDING)
        self._tasks.spawn(self._flush_forever(), name="recorder-flush")

    async def stop(self) -> None:
        """Flush every row and finish every file (the Ctrl-C path)."""
        await self._tasks.close()
        await self.close_files()
        if self.state is not RecorderState.FAILED:
            self._set_state(RecorderState.OFF)
        self._executor.shutdown(wait=True)  # pragma: no mutate (equivalent: drained just above)

    async def set_enabled(self, on: bool) -> None:
        """The runtime toggle: off finishes the open files; on (re)starts, also after a failure."""
        if on:
            was_failed = self.state is RecorderState.FAILED
            error = self.last_error
            if was_failed:
                self.last_error = ""
                # later batches are written again
                self._writer_failed = False  # pragma: no mutate (equivalent: None is falsy too)
            self._set_state(RecorderState.RECORDING)
            if was_failed:  # the window the recording misses goes into the ledger
                now = self.clock.time_ns()
                self.on_event(LedgerEntry(
                    what=Ledger.RECORDER_FAILED, start_ns=self._failed_at_ns, end_ns=now,
                    recv_ns=now, detail=f"{self.rows_dropped - self._dropped_before_fail} "
                                        f"rows not recorded: {error}"[:MAX_DETAIL]))
        else:
            self._set_state(RecorderState.OFF)  # first: rows arriving from now on are not taken
            await self.close_files()

    # -- hot path (event loop) ------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        if self._state is not RecorderState.RECORDING:
            if self._state is RecorderState.FAILED:
                self.rows_dropped += 1
            return
        typ = type(event)
        if typ is LedgerEntry:
            key: Key = (LEDGER_DIR, "")
        else:
            key = (typ.kind, event.symbol)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = LedgerBuffer() if typ is LedgerEntry \
                else ColumnBuffer(typ)
        self._seq += 1
        buf.append(event, self._seq)
        self._count_pending()

    def on_raw(self, frames: list[bytes], recv_ns: int, conn: int) -> None:
        """The receive path's raw tap: every frame as received (only when ``storage.raw``)."""
        if self._state is not RecorderState.RECORDING:
            return
        buf = self._buffers.get((RAW_DIR, ""))
        if buf is None:
            buf = self._buffers[(RAW_DIR, "")] = RawBuffer()
        assert isinstance(buf, RawBuffer)
        for frame in frames:
            self._raw_seq += 1
            buf.recv.append(recv_ns)
            buf.conn.append(conn)
            buf.seq.append(self._raw_seq)
            buf.frames.append(bytes(frame))
        self._count_pending(len(frames))

    def _count_pending(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= self.cfg.flush_rows and self._flush_soon is None \
                and self._loop is not None:
            self._flush_soon = self._loop.call_soon(self.flush)

    # -- flushing (event loop side) --------------------------------------------------------

    def flush(self) -> Future[_Failure | None] | None:
        """Swap the buffers out (O(1) on the loop) and write them in the writer thread."""
        self._flush_soon = None
        batches, self._buffers, self._pending = self._buffers, {}, 0
        if self.state is RecorderState.FAILED:
            self.rows_dropped += sum(len(b) for b in batches.values())
            return None
        return self._submit(self._write, batches, self.clock.time_ns())

    def _submit(self, job: Any, *args: Any) -> Future[_Failure | None]:
        """Run ``job`` in the writer thread; its outcome is handled back on the loop."""
        future: Future[_Failure | None] = self._executor.submit(job, *args)
        self._inflight.append(future)
        loop = self._loop
        if loop is not None:
            future.add_done_callback(lambda f: _call_soon(loop, self._done, f))
        return future

    def _done(self, future: Future[_Failure | None]) -> None:
        """On the loop: a writer job ended; a failure it reports stops the recording."""
        if future not in self._inflight:
            return  # handled already (by drain)
        self._inflight.remove(future)
        failure = future.result()
        if failure is not None:
            self._fail(failure)

    async def drain(self) -> None:
        """Wait until everything flushed so far is on disk (failures handled here)."""
        for future in list(self._inflight):
            await asyncio.wrap_future(future)
            self._done(future)

    async def close_files(self) -> None:
        self.flush()
        self._submit(self._close_all)
        await self.drain()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.flush_interval_s)
            self.flush()

    def _fail(self, failure: _Failure) -> None:
        """Stop recording (on the loop): the writer reported ``failure``."""
        self.rows_dropped += failure.rows_lost
        if self.state is not RecorderState.FAILED:
            log.error("recording stopped: %s", failure.message)
            self._failed_at_ns = failure.since_ns or self.clock.time_ns()
            self._dropped_before_fail = self.rows_dropped - failure.rows_lost
        self.last_error = failure.message
        self._set_state(RecorderState.FAILED)

    # -- writer thread ----------------------------------------------------------------------

    def _write(self, batches: dict[Key, Buffer], now_ns: int) -> _Failure | None:
        recvs = {key: buf.recv_times() for key, buf in batches.items() if len(buf)}
        total = sum(len(r) for r in recvs.values())
        since = min(  # pragma: no mutate (equivalent: default None is falsy like 0)
            (r[0] for r in recvs.values()), default=0)
        if self._writer_failed:  # failed earlier; the loop has not heard yet
            return _Failure(self._writer_error, since, total)
        done = 0
        try:
            for key, recv in recvs.items():
                buf = batches[key]
                schema = buf.schema
                table = buf.take()
                for part, first_ns in _split(table, recv, self._rotate_ns):
                    self._append(key, schema, part, first_ns)
                    done += part.num_rows
            self._close_idle(now_ns)
        except (OSError, pa.ArrowException) as exc:
            return self._broken(f"writing to {self.root} failed: {exc}", since, total - done)
        return None

    def _broken(self, message: str, since_ns: int, rows_lost: int) -> _Failure:
        self._writer_failed = True
        self._writer_error = message
        for seg, _ in self._segments.values():
            seg.abandon()  # kept on disk for recovery at the next start
        self._segments.clear()
        return _Failure(message, since_ns, rows_lost)

    def _append(self, key: Key, schema: pa.Schema, table: pa.Table, first_ns: int) -> None:
        bucket = _bucket(first_ns, self._rotate_ns)
        open_seg = self._segments.get(key)
        if open_seg is not None:
            seg, seg_bucket = open_seg
            if seg_bucket != bucket or seg.bytes >= self._rotate_bytes:
                self._finish(key)
                open_seg = None
        if open_seg is None:
            seg = Segment(self._new_path(key, first_ns), schema)
            self._segments[key] = (seg, bucket)
        else:
            seg = open_seg[0]
        seg.write(table)
        self.rows_written += table.num_rows
        id_column = _ID_COLUMNS.get(key[0])
        if id_column is not None and table.num_rows:
            top = pc.max(table.column(id_column)).as_py()
            # ids are never negative (-2 = -1 here) and a tie stores the same max (>= = >)
            if top > self.written_max.get(key, -1):  # pragma: no mutate (equivalent: see above)
                self.written_max[key] = top

    def _new_path(self, key: Key, first_ns: int) -> Path:
        kind, symbol = key
        folder = partition_dir(self.root, kind, symbol, first_ns)
        while True:
            self._names += 1
            path = folder / file_name(kind, symbol, first_ns, self._names)
            if not path.exists() and not in_progress_path(path).exists():
                return path

    def _finish(self, key: Key) -> None:
        seg, _ = self._segments.pop(key)
        self._note_finished([seg.close()])

    def _note_finished(self, results: list[SegmentResult]) -> None:
        for r in results:
            if r.rows:
                self.files_finished += 1
                self.bytes_finished += r.bytes

    def _close_idle(self, now_ns: int) -> None:
        """Finish segments whose hour has passed even if their stream went quiet."""
        bucket = _bucket(now_ns, self._rotate_ns)
        for key in [k for k, (_, b) in self._segments.items() if b < bucket]:
            self._finish(key)

    def _close_all(self) -> _Failure | None:
        try:
            for key in list(self._segments):
                self._finish(key)
        except (OSError, pa.ArrowException) as exc:
            return self._broken(  # pragma: no mutate (equivalent: since_ns None is falsy like 0)
                f"finishing files in {self.root} failed: {exc}", 0, 0)
        return None

    # -- status ---------------------------------------------------------------------------

    def status(self) -> RecorderStatus:
        open_bytes = sum(seg.bytes for seg, _ in list(self._segments.values()))
        return RecorderStatus(
            state=self.state, directory=str(self.root), rows_written=self.rows_written,
            rows_pending=self._pending, rows_dropped=self.rows_dropped,
            files_finished=self.files_finished, bytes_written=self.bytes_finished + open_bytes,
            recovered_rows=self.recovered_rows, last_error=self.last_error, raw=self.cfg.raw)


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Any, *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is gone (interpreter exit): nobody is left to tell
        pass


def _bucket(ns: int, rotate_ns: int) -> tuple[int, int]:
    """Rotation bucket: UTC day and period within it, so files never straddle a date."""
    return ns // DAY_NS, (ns % DAY_NS) // rotate_ns


def _split(table: pa.Table, recv: list[int], rotate_ns: int) -> list[tuple[pa.Table, int]]:
    """Cut a batch where its rows cross a rotation bucket (hour or UTC date)."""
    if not recv:
        return []
    first, last = _bucket(recv[0], rotate_ns), _bucket(recv[-1], rotate_ns)
    if first == last and all(recv[i] <= recv[i + 1]  # pragma: no mutate (equivalent: same result)
                             for i in range(len(recv) - 1)):
        return [(table, recv[0])]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, ns in enumerate(recv):
        groups.setdefault(_bucket(ns, rotate_ns), []).append(i)
    return [(table.take(pa.array(idx, pa.int64())),  # pragma: no mutate (equivalent: same dtype)
             recv[idx[0]]) for _, idx in sorted(groups.items())]


__all__ = ["LedgerBuffer", "Recorder", "RecorderState", "RecorderStatus"]
