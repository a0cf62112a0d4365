"""Where recorded data lives on disk: one Hive-partitioned dataset per stream type.

    <root>/<kind>/symbol=<SYMBOL>/date=<YYYY-MM-DD>/<kind>-<SYMBOL>-<YYYYmmddTHHMMSS>Z-<n>.parquet
    <root>/_ledger/date=<YYYY-MM-DD>/ledger-<YYYYmmddTHHMMSS>Z-<n>.parquet   (continuity ledger)
    <root>/_raw/date=<YYYY-MM-DD>/raw-<YYYYmmddTHHMMSS>Z-<n>.parquet         (raw frames, optional)

A segment being written is ``.<final name>.arrows`` (an Arrow IPC stream, readable up to
its last complete batch after a crash) in the same folder; dataset readers skip names
starting with ``.`` or ``_``, so only finished files are ever seen. Dates and hours are
UTC and come from the local receive time. Recordings made before the ledger had its
one name keep it under ``_events/`` (``LEGACY_LEDGER_DIR``); readers accept both.
"""

from __future__ import annotations

import time
from pathlib import Path

LEDGER_DIR = "_ledger"
LEGACY_LEDGER_DIR = "_events"
RAW_DIR = "_raw"
IN_PROGRESS_SUFFIX = ".arrows"


def utc_date(ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ns // 1_000_000_000))


def utc_stamp(ns: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ns // 1_000_000_000))


def symbol_dir(root: Path, kind: str, symbol: str) -> Path:
    """Folder of one (stream type, symbol); ``symbol`` empty for _ledger/_raw."""
    base = root / kind
    return base / f"symbol={symbol}" if symbol else base


def partition_dir(root: Path, kind: str, symbol: str, recv_ns: int) -> Path:
    """Folder of one (stream type, symbol, UTC date); ``symbol`` empty for _ledger/_raw."""
    return symbol_dir(root, kind, symbol) / f"date={utc_date(recv_ns)}"


def date_dirs(folder: Path, newest: int | None = None) -> list[Path]:
    """The ``date=`` partitions in ``folder``, newest first (at most ``newest``)."""
    if not folder.is_dir():
        return []
    dates = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("date=")),
                   reverse=True)
    return dates if newest is None else dates[:newest]


def finished_files(folder: Path) -> list[Path]:
    """Finished Parquet files of one partition folder, oldest name first."""
    return [f for f in sorted(folder.glob("*.parquet")) if not f.name.startswith((".", "_"))]


def file_name(kind: str, symbol: str, opened_ns: int, n: int) -> str:
    prefix = kind.lstrip("_")
    return f"{prefix}-{symbol}-{utc_stamp(opened_ns)}-{n}.parquet" if symbol else \
        f"{prefix}-{utc_stamp(opened_ns)}-{n}.parquet"


def in_progress_path(final: Path) -> Path:
    return final.with_name(f".{final.name}{IN_PROGRESS_SUFFIX}")


def final_path(in_progress: Path) -> Path:
    """Inverse of :func:`in_progress_path`."""
    name = in_progress.name
    assert name.startswith(".") and name.endswith(IN_PROGRESS_SUFFIX)
    return in_progress.with_name(name[1:-len(IN_PROGRESS_SUFFIX)])
