"""Crash-safe segment files: Arrow IPC while open, Parquet once finished.

An open segment is an Arrow IPC *stream* at a hidden name; every flush appends one
record batch and flushes it to the OS, so after a crash the file is readable up to its
last complete batch. Closing converts it to zstd Parquet at a temporary hidden name,
renames that atomically to the final ``.parquet`` and only then removes the IPC file.
Recovery (at the next start) finishes what a crash left open the same way. Nothing
here touches the event loop: the recorder calls it from its writer thread.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from engine.storage.layout import IN_PROGRESS_SUFFIX, final_path, in_progress_path

log = logging.getLogger("binance_live.recorder")

ROW_GROUP_ROWS = 128 * 1024
COMPRESSION = "zstd"


@dataclass
class SegmentResult:
    path: Path
    rows: int
    bytes: int


class Segment:
    """One file being written: ``<dir>/.<name>.parquet.arrows`` until closed."""

    def __init__(self, final: Path, schema: pa.Schema) -> None:
        self.final = final
        self.path = in_progress_path(final)
        self.schema = schema
        self.rows = 0
        self.bytes = 0
        final.parent.mkdir(parents=True, exist_ok=True)
        self._sink = pa.OSFile(str(self.path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, table: pa.Table) -> None:
        for batch in table.to_batches():
            self._writer.write_batch(batch)
        self._sink.flush()
        self.rows += table.num_rows
        self.bytes = self._sink.tell()

    def close(self) -> SegmentResult:
        """Finish: Parquet at the final name (atomic), then drop the IPC file."""
        self._writer.close()
        self._sink.close()
        return finish(self.path, self.final)

    def abandon(self) -> None:
        """Close the handle and leave the IPC file for recovery (used on write errors)."""
        try:
            self._writer.close()
            self._sink.close()
        except (OSError, pa.ArrowException):
            pass


def read_complete_batches(path: Path) -> pa.Table | None:
    """Every complete record batch of an IPC stream, even one cut short by a crash."""
    batches: list[pa.RecordBatch] = []
    try:
        reader = pa.ipc.open_stream(pa.memory_map(str(path)))
    except (pa.ArrowInvalid, OSError):
        return None  # not even a complete schema message: nothing to recover
    schema = reader.schema
    while True:
        try:
            batches.append(reader.read_next_batch())
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError):
            break  # a torn last batch
    return pa.Table.from_batches(batches, schema=schema)


def finish(ipc: Path, final: Path) -> SegmentResult:
    table = read_complete_batches(ipc)
    if table is None or table.num_rows == 0:
        ipc.unlink(missing_ok=True)
        return SegmentResult(final, 0, 0)
    tmp = final.with_name(f".{final.name}.tmp")
    pq.write_table(table, str(tmp), compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    ipc.unlink()
    return SegmentResult(final, table.num_rows, final.stat().st_size)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recover(root: Path) -> list[SegmentResult]:
    """Finish every segment a crash left open under ``root``; never deletes data.

    A leftover IPC file whose final Parquet already exists (a crash between rename and
    unlink) is kept and finished under a ``-recovered`` name only if it holds more
    rows than the Parquet file; otherwise it is the same data and is removed.
    """
    results: list[SegmentResult] = []
    if not root.is_dir():
        return results
    for ipc in sorted(root.rglob(f".*{IN_PROGRESS_SUFFIX}")):
        final = final_path(ipc)
        stale_tmp = final.with_name(f".{final.name}.tmp")
        stale_tmp.unlink(missing_ok=True)
        if final.exists():
            done_rows = pq.ParquetFile(final).metadata.num_rows
            table = read_complete_batches(ipc)
            if table is None or table.num_rows <= done_rows:
                ipc.unlink()
                continue
            final = final.with_name(final.name.replace(".parquet", "-recovered.parquet"))
        result = finish(ipc, final)
        log.warning("recovered %d rows from an unfinished segment into %s", result.rows,
                    result.path)
        results.append(result)
    return results
