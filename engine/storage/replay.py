"""Replay a recording: Parquet rows back into the engine's typed events, paced onto a bus.

The reader is the inverse of ``engine/schemas.py`` (one place maps events to columns, this
one maps columns back; ``tests/test_replay.py`` round-trips every recorded type so the two
cannot drift). Conversion is column-wise — one Arrow→Python conversion per column, then
rows are zipped — because a day of one symbol is millions of rows.

Replay order is the recorder's receive order, ``(recv_time, seq)``: ``seq`` is a total
order within one recording run and restarts in a later run, whose ``recv_time`` is later.
The :class:`Replayer` publishes into the same :class:`~engine.bus.Bus` the live feed
uses, so every consumer, the TUI and headless mode run unchanged on recorded data.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from engine.storage import layout, schemas
from engine.bus import Bus
from engine.config.settings import ConfigError
from engine.events import Event, FeedEvent, Kline, KlineBar, Level
from engine.binance.streams import PARTIAL_DEPTH_LEVELS
from engine.tasks import cancel_and_wait

if TYPE_CHECKING:
    from engine.config.settings import Settings
    from engine.engine import Engine

TYPES_BY_KIND: dict[str, type[Event]] = {t.kind: t for t in schemas.RECORDED_TYPES}
FEED_KIND = FeedEvent.kind  # stored under ``_events``, not under its kind
KINDS: tuple[str, ...] = (*TYPES_BY_KIND, FEED_KIND)

_PARTS = pa.schema([("symbol", pa.string()), ("date", pa.string())])
_EVENT_PARTS = pa.schema([("date", pa.string())])
_IGNORE = [".", "_"]  # in-progress ``.<name>.parquet.arrows`` and any ``_``-private file
_BAR_FIELDS = frozenset(KlineBar.__struct_fields__)
# _events column -> FeedEvent field (the only names that differ).
_FEED_RENAME = {"start_time": "start_ns", "end_time": "end_ns"}


class ReplayError(Exception):
    """A recording that cannot be replayed; the message is one line for the user."""


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


def _build(make: Callable[..., Event], names: Sequence[str], cols: Sequence[list[Any]],
           ) -> list[Event]:
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
    if kind == FEED_KIND:
        for name in schemas.EVENTS_SCHEMA.names[3:]:
            names.append(_FEED_RENAME.get(name, name))
            cols.append(_values(table.column(name)))
        return _build(FeedEvent, names, cols)
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
    cols += [syms, _build(KlineBar, bar_names, bar_cols)]  # type: ignore[list-item]
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


def _dataset(path: Path, kind: str) -> ds.Dataset | None:
    if not path.is_dir():
        return None
    base = schemas.EVENTS_SCHEMA if kind == FEED_KIND else schemas.SCHEMAS[kind]
    parts = _EVENT_PARTS if kind == FEED_KIND else _PARTS
    dataset = ds.dataset(path, format="parquet", ignore_prefixes=_IGNORE,
                         partitioning=ds.partitioning(parts, flavor="hive"),
                         schema=pa.schema(list(base) + list(parts)))
    return dataset if dataset.files else None


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
        if kind == FEED_KIND:  # connection-wide ledger entries have no symbol: keep them
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

    ``kinds`` are event kinds (``trade`` … ``orderBookSnapshot``, ``feed`` for the
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
        dataset = _dataset(path / (layout.EVENTS_DIR if kind == FEED_KIND else kind), kind)
        if dataset is None:
            continue
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


# -- command-line values ------------------------------------------------------------------


def parse_speed(text: str) -> float:
    """``max`` (as fast as possible, 0.0) or a positive number (1 = real time)."""
    if text.strip().lower() in ("max", "inf"):
        return 0.0
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not (speed > 0 and math.isfinite(speed)):
        raise ConfigError(f"--speed: {text!r} is not allowed; allowed: max or a positive "
                          "number (1 = real time, 10 = ten times faster)")
    return speed


def parse_time(text: str, flag: str = "--from") -> int:
    """ISO-8601 (UTC unless an offset is given, optional ``Z``) or epoch ms → epoch ns."""
    value = text.strip()
    try:
        if value.isdigit():
            return int(value) * 1_000_000
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not a time; allowed: ISO-8601 UTC "
                          "(2024-08-08T23:55:00, optional Z) or epoch ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


# -- pacing onto a bus ----------------------------------------------------------------------

BATCH = 256  # events per publish_many and between yields to the loop


def stream_label(event: Event) -> str:
    """The live stream name an event would have come on (for per-stream status rows)."""
    sym = getattr(event, "symbol", "").lower()
    if isinstance(event, Kline):
        return f"{sym}@kline_{event.bar.interval}"
    if isinstance(event, FeedEvent):
        return f"{sym or '!'}@feed"
    if event.kind == "depthPartial":
        n = len(event.bids)  # type: ignore[attr-defined]
        return f"{sym}@depth{next((lv for lv in PARTIAL_DEPTH_LEVELS if lv >= n), n)}"
    if event.kind == "depthUpdate":
        return f"{sym}@depth"
    return f"{sym}@{event.kind}"


@dataclass(slots=True)
class StreamCount:
    kind: str
    symbol: str
    messages: int = 0
    last_recv_ns: int = 0


class Replayer:
    """Publishes a recording into ``bus``, paced by recv_time deltas divided by ``speed``.

    ``speed`` 0 or ``inf`` is as fast as possible (batches of :data:`BATCH`, yielding to the
    loop between them so consumers and UIs keep running). Loading happens in a worker
    thread so a large recording does not freeze a UI. ``done`` is set when the last event
    is published (``finished``), on error (kept in ``error``) and on :meth:`stop`.
    """

    def __init__(self, root: str | Path, bus: Bus, speed: float = 1.0,
                 start_ns: int | None = None, end_ns: int | None = None,
                 kinds: Iterable[str] | None = None,
                 symbols: Iterable[str] | None = None) -> None:
        if speed < 0 or math.isnan(speed):
            raise ValueError("speed must be >= 0 (0 or inf = as fast as possible)")
        self.root = Path(root)
        self.bus = bus
        self.speed = speed
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.kinds = None if kinds is None else tuple(kinds)
        self.symbols = None if symbols is None else tuple(symbols)
        self.done = asyncio.Event()
        self.published = 0
        self.skipped = 0  # events of muted kinds (TUI toggles), not published
        self.total = 0
        self.position_ns = 0  # recv_time of the last event handled
        self.first_ns = 0
        self.last_ns = 0
        self.error: BaseException | None = None
        self.finished = False  # every event handled (not stopped early, no error)
        self.muted: set[str] = set()
        self.streams: dict[str, StreamCount] = {}
        self._labels: dict[tuple[type, str], StreamCount] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def fast(self) -> bool:
        return self.speed == 0 or math.isinf(self.speed)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="replay")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self.done.set()

    def mute(self, kind: str, muted: bool = True) -> None:
        """Skip (or again publish) one event kind from now on."""
        if muted:
            self.muted.add(kind)
        else:
            self.muted.discard(kind)

    async def _run(self) -> None:
        try:
            events = await asyncio.to_thread(read_events, self.root, self.start_ns,
                                             self.end_ns, self.kinds, self.symbols)
            self.total = len(events)
            if events:
                self.first_ns, self.last_ns = events[0].recv_ns, events[-1].recv_ns
                await self._play(events)
            self.finished = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported through .error, not lost in a task
            self.error = exc
        finally:
            self.done.set()

    async def _play(self, events: list[Event]) -> None:
        n = len(events)
        if self.fast:
            for i in range(0, n, BATCH):
                self._publish(events[i:i + BATCH])
                await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        recv = [e.recv_ns for e in events]
        t0, ns0, per_ns = loop.time(), recv[0], 1e-9 / self.speed
        i = 0
        while i < n:
            ahead = t0 + (recv[i] - ns0) * per_ns - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            horizon = ns0 + (loop.time() - t0) / per_ns  # everything due by now, batched
            j = max(i + 1, bisect.bisect_right(recv, horizon, i, min(n, i + BATCH)))
            self._publish(events[i:j])
            full, i = j - i >= BATCH, j
            if full:
                await asyncio.sleep(0)

    def _publish(self, batch: list[Event]) -> None:
        if self.muted:
            kept = [e for e in batch if e.kind not in self.muted]
            self.skipped += len(batch) - len(kept)
        else:
            kept = batch
        labels = self._labels
        for e in kept:
            key = (type(e), getattr(e, "symbol", ""))
            count = labels.get(key)
            if count is None:
                count = labels[key] = self.streams.setdefault(
                    stream_label(e), StreamCount(e.kind, key[1]))
            count.messages += 1
            count.last_recv_ns = e.recv_ns
        self.bus.publish_many(kept)
        self.published += len(kept)
        self.position_ns = batch[-1].recv_ns

    def progress(self) -> tuple[int, int, int]:
        """(published, total, position_ns) for status lines."""
        return self.published, self.total, self.position_ns


@dataclass(frozen=True)
class ReplaySpec:
    """What ``--replay DIR [--speed] [--from] [--to]`` asked for."""

    root: Path
    speed: float = 1.0
    start_ns: int | None = None
    end_ns: int | None = None

    def check(self) -> None:
        """Fail early (one line) on a missing or empty recording, before any UI starts."""
        if not self.root.is_dir():
            raise ReplayError(f"--replay: {self.root}: no such directory")
        if not any(_dataset(self.root / (layout.EVENTS_DIR if k == FEED_KIND else k), k)
                   for k in KINDS):
            raise ReplayError(f"--replay: {self.root}: no recorded data (expected <kind>/"
                              "symbol=<SYMBOL>/date=<YYYY-MM-DD>/*.parquet)")

    def engine(self, settings: Settings, bus: Bus | None = None) -> Engine:
        """An engine that plays this recording instead of connecting."""
        from engine.engine import Engine

        bus = bus or Bus()
        return Engine(settings, bus, replay=Replayer(self.root, bus, self.speed,
                                                     self.start_ns, self.end_ns))
