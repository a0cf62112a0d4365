"""The tail of a recording: its last ids and closed klines, for restart continuity.

After a restart (kill -9 included) the engine seeds the id gate with the last recorded
trade/aggTrade id of each symbol, so the first live event reports the downtime as a
gap and the backfill fills it. Only the newest two date partitions of each dataset are
looked at, and for ids only the Parquet row-group statistics (no data read).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from engine.events import AggTrade, DepthUpdate, Kline, Trade
from engine.storage.layout import date_dirs, finished_files, symbol_dir

log = logging.getLogger("binance_live.storage")


@dataclass(frozen=True)
class RecordedTail:
    """What a recording ends with, per symbol."""

    ids: dict[tuple[type, str], tuple[int, int]]  # (Trade|AggTrade, symbol) -> (id, recv_ns)
    klines: dict[tuple[str, str], int]  # (symbol, interval) -> last closed open time (ms)


def _newest_files(folder: Path, partitions: int = 2) -> list[Path]:
    return [f for d in date_dirs(folder, partitions) for f in finished_files(d)]


def _max_stat(files: list[Path], column: str) -> tuple[int, int] | None:
    """(max of ``column``, max recv_time) from Parquet row-group statistics (no data read)."""
    best: tuple[int, int] | None = None
    for path in files:
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, ValueError) as exc:  # a damaged file: skip, never fail a start
            log.warning("cannot read %s: %s", path, exc)
            continue
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if column not in names or "recv_time" not in names:
            continue
        ci, ri = names.index(column), names.index("recv_time")
        for g in range(meta.num_row_groups):
            rg = meta.row_group(g)
            ids, recv = rg.column(ci).statistics, rg.column(ri).statistics
            if ids is None or recv is None or not ids.has_min_max or not recv.has_min_max:
                table = pq.read_table(path, columns=[column, "recv_time"])
                if table.num_rows:
                    top = (max(table.column(column).to_pylist()),
                           max(table.column("recv_time").cast("int64").to_pylist()))
                    best = top if best is None else max(best, top)
                break
            top = (int(ids.max_raw), int(recv.max_raw))
            best = top if best is None else (max(best[0], top[0]), max(best[1], top[1]))
    return best


def _last_closed_klines(files: list[Path]) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in files[-4:]:  # klines are few: the newest files are enough
        try:
            table = pq.read_table(path, columns=["interval", "open_time", "closed"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("cannot read %s: %s", path, exc)
            continue
        for iv, t, closed in zip(table.column("interval").to_pylist(),
                                 table.column("open_time").cast("int64").to_pylist(),
                                 table.column("closed").to_pylist(), strict=True):
            if closed and t > out.get(iv, -1):
                out[iv] = t
    return out


def last_recorded(root: Path | str, symbols: Iterable[str]) -> RecordedTail:
    """The last recorded trade id / aggTrade id (and closed kline) of each symbol.

    Reads only the newest two date partitions of each dataset, and for ids only the
    Parquet statistics. Run it after the recorder's crash recovery, so segments a kill -9
    left open are already finished files. Blocking: call it from a worker thread.
    """
    root = Path(root)
    ids: dict[tuple[type, str], tuple[int, int]] = {}
    klines: dict[tuple[str, str], int] = {}
    for sym in symbols:
        for typ, column in ((Trade, "trade_id"), (AggTrade, "agg_id"),
                            (DepthUpdate, "final_update_id")):
            found = _max_stat(_newest_files(symbol_dir(root, typ.kind, sym)), column)
            if found is not None:
                ids[(typ, sym)] = found
        for iv, t in _last_closed_klines(
                _newest_files(symbol_dir(root, Kline.kind, sym))).items():
            klines[(sym, iv)] = t
    return RecordedTail(ids, klines)
