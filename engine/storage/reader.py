"""Reading a recording back: Parquet rows → the engine's typed events, in arrival order.

The inverse of ``engine/storage/schemas.py`` (one place maps events to columns, this one
maps columns back; the tests round-trip every recorded type so the two cannot drift).
Conversion is column-wise — one Arrow→Python conversion per column, then rows are
zipped — because a day of one symbol is millions of rows.

Order is the recorder's receive order, ``(recv_time, seq)``: ``seq`` is a total order
within one recording run and restarts in a later run, whose ``recv_time`` is later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from engine.errors import ReplayError
from engine.events import Event, Kline, KlineBar, LedgerEntry, Level
from engine.storage import layout, schemas

TYPES_BY_KIND: dict[str, type[Event]] = {t.kind: t for t in schemas.RECORDED_TYPES}
LEDGER_KIND = LedgerEntry.kind  # stored under ``_ledger`` (or legacy ``_events``)
KINDS: tuple[str, ...] = (*TYPES_BY_KIND, LEDGER_KIND)

_PARTS = pa.schema([("symbol", pa.string()), ("date", pa.string())])
_LEDGER_PARTS = pa.schema([("date", pa.string())])
_IGNORE = [".", "_"]  # in-progress ``.<name>.parquet.arrows`` and any ``_``-private file
_BAR_FIELDS = frozenset(KlineBar.__struct_fields__)
# ledger column -> LedgerEntry field (the only names that differ).
_LEDGER_RENAME = {"start_time": "start_ns", "end_time": "end_ns"}

# -- columns → events ---------------------------------------------------------------------


def _ints(col: pa.ChunkedArray | pa.Array) -> list[int]:
    """Timestamps (any unit) as their raw epoch integers, ids as ints."""
    return col.cast(pa.int64()).to_pylist()


def _levels(col: pa.ChunkedArray) -> list[list[Level]]:
    """``list<struct<price, qty>>`` → lists of (price, qty) tuples, without per-level dicts."""
    out: list[list[Level]] = []
    for chunk in col.chunks:
        offsets = chunk.offsets.to_pylist()
        base = offsets[0] if offsets else 0
        price, qty = chunk.flatten().flatten()  # flatten() honours slicing, .values does not
        pairs = list(zip(price.to_pylist(), qty.to_pylist(), strict=True))
        out.extend(pairs[a - base:b - base] for a, b in pairwise(offsets))
    return out


def _values(col: pa.ChunkedArray) -> list[Any]:
    if pa.types.is_timestamp(col.type):
        return _ints(col)
    if col.type == schemas.LEVELS:
        return _levels(col)
    return col.to_pylist()


# Columns added after the first recordings: older files lack them (read as nulls through a
# dataset with today's schema, or missing from a single file), so they get their default.
_ADDED_LATER: dict[str, Any] = {"backfilled": False}


def _column(table: pa.Table, name: str) -> list[Any]:
    if name in _ADDED_LATER:
        if name not in table.column_names:
            return [_ADDED_LATER[name]] * table.num_rows
        col = table.column(name)
        if col.null_count:
            return _values(col.fill_null(_ADDED_LATER[name]))
    return _values(table.column(name))


def _build(make: Callable[..., Any], names: Sequence[str], cols: Sequence[list[Any]],
           ) -> list[Any]:
    return [make(**dict(zip(names, row, strict=True))) for row in zip(*cols, strict=True)]


def events_from_table(table: pa.Table, kind: str, symbol: str = "") -> list[Event]:
    """Rows of one recorded kind → events, in table order.

    The symbol comes from a ``symbol`` column (the hive partition) when the table has
    one, else from ``symbol``. ``recv_ns``/``conn`` are restored; fields the recorder
    does not store (e.g. futures-only ones) get their struct defaults.
    """
    n = table.num_rows
    names = ["recv_ns", "conn"]
    cols: list[list[Any]] = [_ints(table.column("recv_time")), _ints(table.column("conn_id"))]
    if kind == LEDGER_KIND:
        for name in schemas.LEDGER_SCHEMA.names[3:]:
            names.append(_LEDGER_RENAME.get(name, name))
            cols.append(_values(table.column(name)))
        return _build(LedgerEntry, names, cols)
    typ = TYPES_BY_KIND[kind]
    syms = table.column("symbol").to_pylist() if "symbol" in table.column_names \
        else [symbol] * n
    if typ is not Kline:
        names.append("symbol")
        cols.append(syms)
        for name in schemas.columns(typ):
            names.append(name)
            cols.append(_column(table, name))
        return _build(typ, names, cols)
    bar_names, bar_cols = ["symbol"], [syms]
    for name in schemas.columns(Kline):
        target = (bar_names, bar_cols) if name in _BAR_FIELDS else (names, cols)
        target[0].append(name)
        target[1].append(_column(table, name))
    names += ["symbol", "bar"]
    cols += [syms, _build(KlineBar, bar_names, bar_cols)]
    return _build(Kline, names, cols)


def _check_mapping() -> None:
    """Fail at import, not mid-replay, if schemas.py gains a column we cannot map back."""
    for typ in schemas.RECORDED_TYPES:
        fields = set(typ.__struct_fields__) | (_BAR_FIELDS if typ is Kline else set())
        missing = [c for c in schemas.columns(typ) if c not in fields]
        if missing:
            raise ImportError(f"replay: {typ.kind} columns {missing} map to no field")


_check_mapping()


# -- reading a dataset ----------------------------------------------------------------------


def _folders(root: Path, kind: str) -> list[Path]:
    if kind == LEDGER_KIND:
        return [root / layout.LEDGER_DIR, root / layout.LEGACY_LEDGER_DIR]
    return [root / kind]


def _datasets(root: Path, kind: str) -> list[ds.Dataset]:
    base = schemas.LEDGER_SCHEMA if kind == LEDGER_KIND else schemas.SCHEMAS[kind]
    parts = _LEDGER_PARTS if kind == LEDGER_KIND else _PARTS
    out = []
    for path in _folders(root, kind):
        if path.is_dir():
            dataset = ds.dataset(path, format="parquet", ignore_prefixes=_IGNORE,
                                 partitioning=ds.partitioning(parts, flavor="hive"),
                                 schema=pa.schema(list(base) + list(parts)))
            if dataset.files:
                out.append(dataset)
    return out


def has_recording(root: Path) -> bool:
    """Whether ``root`` holds any recorded data at all."""
    return any(_datasets(root, kind) for kind in KINDS)


def check_recording(root: Path) -> None:
    """Fail early (one line) on a missing or empty recording."""
    if not root.is_dir():
        raise ReplayError(f"{root}: no such directory")
    if not has_recording(root):
        raise ReplayError(f"{root}: no recorded data (expected <kind>/symbol=<SYMBOL>/"
                          "date=<YYYY-MM-DD>/*.parquet)")


def _filter(kind: str, start_ns: int | None, end_ns: int | None,
            symbols: Sequence[str] | None) -> ds.Expression | None:
    """recv_time window [start, end) plus partition pruning on date (and symbol)."""
    conds: list[ds.Expression] = []
    if start_ns is not None:
        conds += [ds.field("recv_time") >= pa.scalar(start_ns, schemas.NS),
                  ds.field("date") >= layout.utc_date(start_ns)]
    if end_ns is not None:
        conds += [ds.field("recv_time") < pa.scalar(end_ns, schemas.NS),
                  ds.field("date") <= layout.utc_date(end_ns)]
    if symbols is not None:
        if kind == LEDGER_KIND:  # connection-wide ledger entries have no symbol: keep them
            conds.append(ds.field("symbol").isin([*symbols, ""]))
        else:
            conds.append(ds.field("symbol").isin(list(symbols)))
    if not conds:
        return None
    expr = conds[0]
    for cond in conds[1:]:
        expr = expr & cond
    return expr


def read_events(root: str | Path, start_ns: int | None = None, end_ns: int | None = None,
                kinds: Iterable[str] | None = None,
                symbols: Iterable[str] | None = None) -> list[Event]:
    """Every recorded event with ``start_ns <= recv_ns < end_ns``, in (recv_time, seq) order.

    ``kinds`` are event kinds (``trade`` … ``orderBookSnapshot``, ``ledger`` for the
    continuity ledger); default all. Raises :class:`ReplayError` when ``root`` is not a
    directory or holds no recorded data (an empty time window is just an empty list).
    """
    path = Path(root)
    if not path.is_dir():
        raise ReplayError(f"{root}: no such directory")
    wanted = list(KINDS if kinds is None else kinds)
    unknown = [k for k in wanted if k not in KINDS]
    if unknown:
        raise ReplayError(f"unknown kind {unknown[0]!r}; known: {', '.join(KINDS)}")
    syms = None if symbols is None else [s.upper() for s in symbols]
    events: list[Event] = []
    keys: list[pa.Table] = []
    found = False
    for kind in wanted:
        for dataset in _datasets(path, kind):
            found = True
            table = dataset.to_table(filter=_filter(kind, start_ns, end_ns, syms))
            if table.num_rows:
                events += events_from_table(table, kind)
                keys.append(pa.table({"t": table.column("recv_time").cast(pa.int64()),
                                      "s": table.column("seq")}))
    if not found:
        raise ReplayError(f"{root}: no recorded data (expected <kind>/symbol=<SYMBOL>/"
                          "date=<YYYY-MM-DD>/*.parquet)")
    if not keys:
        return []
    order = pc.sort_indices(pa.concat_tables(keys),
                            sort_keys=[("t", "ascending"), ("s", "ascending")])
    return [events[i] for i in order.to_pylist()]


