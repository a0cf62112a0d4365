"""One explicit Arrow schema per stream type, and columnar buffers that fill them.

The single place that decides how an event becomes a Parquet row: ids are
int64, exchange times ``timestamp[ms, UTC]``, prices and quantities float64, flags bool,
depth levels ``list<struct<price, qty>>``; every row also carries the local receive
time (``timestamp[ns, UTC]``) and the connection id. Bump ``SCHEMA_VERSION`` on any
change; it is written into each file's metadata.

Buffers keep one tuple of plain Python values per row (a single ``attrgetter`` call on
the hot path) and transpose them into Arrow arrays only when a batch is taken.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

import pyarrow as pa

from engine.events import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Event,
    Kline,
    MiniTicker,
    OrderBookSnapshot,
    PartialDepth,
    Trade,
)

SCHEMA_VERSION = 3  # 2: trade/aggTrade/kline gained `backfilled`; 3: _events is _ledger

MS = pa.timestamp("ms", tz="UTC")
NS = pa.timestamp("ns", tz="UTC")
LEVEL = pa.struct([("price", pa.float64()), ("qty", pa.float64())])
LEVELS = pa.list_(LEVEL)

# Every row: local receive time, the connection it came on, and the recorder's receive
# sequence number (total order across all stream types, so replay reproduces it exactly).
# The symbol is not a column: files are partitioned by it (``symbol=BTCUSDT``), and
# hive-partitioned readers add it back.
_COMMON = [("recv_time", NS), ("conn_id", pa.int64()), ("seq", pa.int64())]

# column name -> (arrow type, attribute path on the event); order is the file's column order.
Columns = list[tuple[str, pa.DataType, str]]

_COLUMNS: dict[type[Event], Columns] = {
    Trade: [
        ("event_time", MS, "event_time"),
        ("trade_id", pa.int64(), "trade_id"),
        ("price", pa.float64(), "price"),
        ("qty", pa.float64(), "qty"),
        ("trade_time", MS, "trade_time"),
        ("buyer_is_maker", pa.bool_(), "buyer_is_maker"),
        ("best_match", pa.bool_(), "best_match"),
        ("backfilled", pa.bool_(), "backfilled"),
    ],
    AggTrade: [
        ("event_time", MS, "event_time"),
        ("agg_id", pa.int64(), "agg_id"),
        ("price", pa.float64(), "price"),
        ("qty", pa.float64(), "qty"),
        ("first_trade_id", pa.int64(), "first_trade_id"),
        ("last_trade_id", pa.int64(), "last_trade_id"),
        ("trade_time", MS, "trade_time"),
        ("buyer_is_maker", pa.bool_(), "buyer_is_maker"),
        ("best_match", pa.bool_(), "best_match"),
        ("backfilled", pa.bool_(), "backfilled"),
    ],
    Kline: [
        ("event_time", MS, "event_time"),
        ("interval", pa.string(), "bar.interval"),
        ("open_time", MS, "bar.open_time"),
        ("close_time", MS, "bar.close_time"),
        ("first_trade_id", pa.int64(), "bar.first_trade_id"),
        ("last_trade_id", pa.int64(), "bar.last_trade_id"),
        ("open", pa.float64(), "bar.open"),
        ("high", pa.float64(), "bar.high"),
        ("low", pa.float64(), "bar.low"),
        ("close", pa.float64(), "bar.close"),
        ("volume", pa.float64(), "bar.volume"),
        ("quote_volume", pa.float64(), "bar.quote_volume"),
        ("taker_buy_volume", pa.float64(), "bar.taker_buy_volume"),
        ("taker_buy_quote_volume", pa.float64(), "bar.taker_buy_quote_volume"),
        ("trades", pa.int64(), "bar.trades"),
        ("closed", pa.bool_(), "bar.closed"),
        ("backfilled", pa.bool_(), "backfilled"),
    ],
    BookTicker: [
        ("update_id", pa.int64(), "update_id"),
        ("bid_price", pa.float64(), "bid_price"),
        ("bid_qty", pa.float64(), "bid_qty"),
        ("ask_price", pa.float64(), "ask_price"),
        ("ask_qty", pa.float64(), "ask_qty"),
    ],
    PartialDepth: [
        ("last_update_id", pa.int64(), "last_update_id"),
        ("bids", LEVELS, "bids"),
        ("asks", LEVELS, "asks"),
    ],
    DepthUpdate: [
        ("event_time", MS, "event_time"),
        ("first_update_id", pa.int64(), "first_update_id"),
        ("final_update_id", pa.int64(), "final_update_id"),
        ("bids", LEVELS, "bids"),
        ("asks", LEVELS, "asks"),
    ],
    MiniTicker: [
        ("event_time", MS, "event_time"),
        ("open", pa.float64(), "open"),
        ("high", pa.float64(), "high"),
        ("low", pa.float64(), "low"),
        ("close", pa.float64(), "close"),
        ("volume", pa.float64(), "volume"),
        ("quote_volume", pa.float64(), "quote_volume"),
    ],
    OrderBookSnapshot: [
        ("last_update_id", pa.int64(), "last_update_id"),
        ("limit", pa.int64(), "limit"),
        ("bids", LEVELS, "bids"),
        ("asks", LEVELS, "asks"),
    ],
}

RAW_SCHEMA = pa.schema(
    [pa.field("recv_time", NS, nullable=False), pa.field("conn_id", pa.int64(), nullable=False),
     pa.field("seq", pa.int64(), nullable=False), pa.field("frame", pa.binary(), nullable=False)],
    metadata={"binance_live.schema_version": str(SCHEMA_VERSION), "binance_live.stream": "raw"})

LEDGER_SCHEMA = pa.schema(
    [pa.field("recv_time", NS, nullable=False), pa.field("conn_id", pa.int64(), nullable=False),
     pa.field("seq", pa.int64(), nullable=False), pa.field("what", pa.string(), nullable=False),
     pa.field("stream", pa.string(), nullable=False),
     pa.field("symbol", pa.string(), nullable=False),
     pa.field("first_missing", pa.int64(), nullable=False),
     pa.field("last_good", pa.int64(), nullable=False),
     pa.field("start_time", NS, nullable=False), pa.field("end_time", NS, nullable=False),
     pa.field("detail", pa.string(), nullable=False),
     pa.field("last_missing", pa.int64(), nullable=False)],
    metadata={"binance_live.schema_version": str(SCHEMA_VERSION),
              "binance_live.stream": "_ledger"})

RECORDED_TYPES: tuple[type[Event], ...] = tuple(_COLUMNS)


def schema_for(typ: type[Event]) -> pa.Schema:
    fields = [pa.field(name, dtype, nullable=False) for name, dtype in _COMMON]
    fields += [pa.field(name, dtype, nullable=False) for name, dtype, _ in _COLUMNS[typ]]
    return pa.schema(fields, metadata={"binance_live.schema_version": str(SCHEMA_VERSION),
                                       "binance_live.stream": typ.kind})


SCHEMAS: dict[str, pa.Schema] = {t.kind: schema_for(t) for t in RECORDED_TYPES}


def _levels_array(rows: list[list[tuple[float, float]]]) -> pa.Array:
    """list<struct<price, qty>> from lists of (price, qty), without per-level dicts."""
    offsets = [0]
    prices: list[float] = []
    qtys: list[float] = []
    for levels in rows:
        for price, qty in levels:
            prices.append(price)
            qtys.append(qty)
        offsets.append(len(prices))
    values = pa.StructArray.from_arrays([pa.array(prices, pa.float64()),
                                         pa.array(qtys, pa.float64())], fields=list(LEVEL))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=LEVELS)


def columns(typ: type[Event]) -> list[str]:
    """Names of the type-specific columns, in file order (after the common ones)."""
    return [name for name, _, _ in _COLUMNS[typ]]


class ColumnBuffer:
    """Rows of one stream type (one symbol), kept as Python tuples until :meth:`take`."""

    def __init__(self, typ: type[Event]) -> None:
        self.typ = typ
        self.schema = SCHEMAS[typ.kind]
        # One C-level call per event: a tuple of every column value, transposed at take().
        self._row = attrgetter("recv_ns", "conn", *(path for _, _, path in _COLUMNS[typ]))
        self._types = [dtype for _, dtype, _ in _COLUMNS[typ]]
        self._clear()

    def _clear(self) -> None:
        self._seq: list[int] = []
        self._rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def recv_times(self) -> list[int]:
        return [row[0] for row in self._rows]

    def append(self, event: Any, seq: int = 0) -> None:
        self._seq.append(seq)
        self._rows.append(self._row(event))

    def take(self) -> pa.Table:
        """All buffered rows as a table of this type's schema; the buffer is emptied."""
        cols: list[Any] = list(zip(*self._rows, strict=True)) if self._rows else \
            [()] * (2 + len(self._types))
        arrays = [pa.array(cols[0], NS), pa.array(cols[1], pa.int64()),
                  pa.array(self._seq, pa.int64())]
        for col, dtype in zip(cols[2:], self._types, strict=True):
            arrays.append(_levels_array(col) if dtype == LEVELS else pa.array(col, dtype))
        self._clear()
        return pa.Table.from_arrays(arrays, schema=self.schema)
