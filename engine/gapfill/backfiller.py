"""Gap backfill from REST: the trades, aggregate trades and klines a disconnect cost us.

The id gate publishes ``FeedEvent(what="gap")`` when trade or aggTrade ids jump. The
:class:`Backfiller` (an inline bus consumer that only *schedules* work) then fetches the
missing ids with ``/api/v3/historicalTrades`` (weight 25) or ``/api/v3/aggTrades``
(weight 4), ``fromId`` + ``limit=1000`` per page, through the one shared REST client and
weight budget at BACKFILL priority (after book resyncs, before polling; 429/418 pause
every caller). Rows become the same ``Trade``/``AggTrade`` structs the stream produces,
with ``backfilled=True`` and ``conn=0`` (REST), and are published on the bus in id order
with ``publish_many`` (straight to the bus, not through the gate). Each gap ends in one
ledger row: ``backfill`` ("N rows from /api/v3/aggTrades") or ``backfill_failed`` with
the reason (ids older than the exchange keeps, a gap too large, REST failing after
:data:`MAX_ATTEMPTS` tries with the shared backoff policy).

Klines have no ids. The open time of the last kline seen on each (symbol, interval) is
remembered; after a disconnect (``disconnect``/``stale``/``server_shutdown``) the next
``connect`` triggers ``/api/v3/klines`` (weight 2) from that open time for the bars that
closed before the reconnect, and the first live *closed* kline after it triggers a second
pass for the bars before that one (the bar open at the reconnect may never be sent closed
on the new socket). Bars already seen closed are skipped, so none is stored twice; the
rest are published with ``backfilled=True``.

Restart continuity (kill -9): :func:`last_recorded` reads the tail of a recording (the
newest two date partitions, Parquet statistics only) so the engine can seed the gate with
the last recorded trade/aggTrade id: the first live event then reports the downtime as a
gap, and this module fills it.

Depth diffs cannot be backfilled (Binance has no history of them; the book resyncs from a
snapshot instead) and bookTicker/partial depth/miniTicker have no REST history.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pyarrow.parquet as pq

from engine.retry import Backoff
from engine.bus import Bus, Mode
from engine.feed.gate import IdGate
from engine.events import AggTrade, DepthUpdate, FeedEvent, Kline, KlineBar, RestKline, Trade
from engine.rest.client import Priority, RestClient, RestError
from engine.binance.streams import parse_stream_name, stream_name

log = logging.getLogger("binance_live.backfill")

PAGE = 1000  # rows per REST page (Binance's maximum for all three endpoints)
MAX_ATTEMPTS = 8  # tries per page (429/418/5xx/network/empty reply) before giving up
MAX_GAP_IDS = 5_000_000  # a longer gap (days of downtime) is reported, not fetched
BACKFILL_CONN = 0  # connection id of REST-sourced events (stream connections start at 1)
CLOSED_KEEP = 5_000  # closed kline open times remembered per (symbol, interval)
ENDPOINTS = {"trade": "/api/v3/historicalTrades", "aggTrade": "/api/v3/aggTrades"}
KLINES = "/api/v3/klines"
_RETRY_STATUS = frozenset({418, 429, 500, 502, 503, 504})
_MISSING_RE = re.compile(r"(\d+) ids? missing")
_RETRACTED = "retracted"
_HAS_LAST_MISSING = "last_missing" in FeedEvent.__struct_fields__


# -- REST rows → stream models (pure) ----------------------------------------------------


class _TradeRow(msgspec.Struct, gc=False):
    """``/api/v3/historicalTrades`` (and ``/trades``) row."""

    id: int
    price: float
    qty: float
    time: int
    isBuyerMaker: bool  # noqa: N815 - Binance's key
    isBestMatch: bool = True  # noqa: N815


class _AggRow(msgspec.Struct, gc=False):
    """``/api/v3/aggTrades`` row (same keys as the stream payload, without e/E/s)."""

    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool
    M: bool = True



_trades_dec = msgspec.json.Decoder(list[_TradeRow], strict=False)
_aggs_dec = msgspec.json.Decoder(list[_AggRow], strict=False)
_klines_dec = msgspec.json.Decoder(list[RestKline], strict=False)


def trades_from_rest(body: bytes, symbol: str, recv_ns: int,
                     conn: int = BACKFILL_CONN) -> list[Trade]:
    """historicalTrades rows as stream ``Trade``s; REST has no event time, so it is the
    trade time."""
    return [Trade(event_time=r.time, symbol=symbol, trade_id=r.id, price=r.price, qty=r.qty,
                  trade_time=r.time, buyer_is_maker=r.isBuyerMaker, best_match=r.isBestMatch,
                  recv_ns=recv_ns, conn=conn, backfilled=True)
            for r in _trades_dec.decode(body)]


def agg_trades_from_rest(body: bytes, symbol: str, recv_ns: int,
                         conn: int = BACKFILL_CONN) -> list[AggTrade]:
    """aggTrades rows as stream ``AggTrade``s (event time = trade time)."""
    return [AggTrade(event_time=r.T, symbol=symbol, agg_id=r.a, price=r.p, qty=r.q,
                     first_trade_id=r.f, last_trade_id=r.l, trade_time=r.T,
                     buyer_is_maker=r.m, best_match=r.M, recv_ns=recv_ns, conn=conn,
                     backfilled=True)
            for r in _aggs_dec.decode(body)]


def klines_from_rest(body: bytes, symbol: str, interval: str, recv_ns: int, now_ms: int,
                     conn: int = BACKFILL_CONN) -> list[Kline]:
    """klines rows as stream ``Kline``s; ``closed`` when the close time is before
    ``now_ms`` (exchange time). REST has no first/last trade id (-1, as Binance sends for
    an empty bar) and no event time (the close time is used)."""
    out = []
    for r in _klines_dec.decode(body):
        bar = KlineBar(open_time=r.open_time, close_time=r.close_time, symbol=symbol,
                       interval=interval, first_trade_id=-1, last_trade_id=-1, open=r.open,
                       close=r.close, high=r.high, low=r.low, volume=r.volume,
                       trades=r.trades, closed=r.close_time < now_ms,
                       quote_volume=r.quote_volume, taker_buy_volume=r.taker_buy_volume,
                       taker_buy_quote_volume=r.taker_buy_quote_volume)
        out.append(Kline(event_time=r.close_time, symbol=symbol, bar=bar, recv_ns=recv_ns,
                         conn=conn, backfilled=True))
    return out


def _id(event: Trade | AggTrade) -> int:
    return event.trade_id if type(event) is Trade else event.agg_id  # type: ignore[union-attr]


def gap_range(event: FeedEvent) -> tuple[int, int]:
    """``[first_missing, last_missing]`` of a gap row (``last_missing`` field when the
    model has it, else from the "N ids missing" detail); (-1, -1) when unknown."""
    first = event.first_missing
    last = getattr(event, "last_missing", -1)
    if last < 0:
        m = _MISSING_RE.search(event.detail)
        if m is None or first < 0:
            return -1, -1
        last = first + int(m[1]) - 1
    return first, last


# -- the tail of a recording (restart continuity) ----------------------------------------


@dataclass(frozen=True)
class RecordedTail:
    """What a recording ends with, per symbol."""

    ids: dict[tuple[type, str], tuple[int, int]]  # (Trade|AggTrade, symbol) -> (id, recv_ns)
    klines: dict[tuple[str, str], int]  # (symbol, interval) -> last closed open time (ms)


def _newest_files(folder: Path, partitions: int = 2) -> list[Path]:
    if not folder.is_dir():
        return []
    dates = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("date=")),
                   reverse=True)[:partitions]
    return [f for d in dates for f in sorted(d.glob("*.parquet"))
            if not f.name.startswith((".", "_"))]


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
            found = _max_stat(_newest_files(root / typ.kind / f"symbol={sym}"), column)
            if found is not None:
                ids[(typ, sym)] = found
        for iv, t in _last_closed_klines(
                _newest_files(root / Kline.kind / f"symbol={sym}")).items():
            klines[(sym, iv)] = t
    return RecordedTail(ids, klines)


# -- the backfiller ----------------------------------------------------------------------


class _Giveup(Exception):
    """A page could not be fetched: the reason goes to the ledger."""


@dataclass
class BackfillStats:
    gaps: int = 0  # trade/aggTrade gaps handed to us
    filled: int = 0  # gaps filled completely
    failed: int = 0  # gaps (or kline ranges) not (fully) filled
    rows: int = 0  # trades + aggTrades published
    klines: int = 0  # closed klines published
    retries: int = 0
    last_error: str = ""


def _feed(what: str, stream: str, symbol: str, first: int, last: int, last_good: int,
          start_ns: int, detail: str) -> FeedEvent:
    now = time.time_ns()
    extra: dict[str, Any] = {"last_missing": last} if _HAS_LAST_MISSING else {}
    return FeedEvent(what=what, stream=stream, symbol=symbol, first_missing=first,
                     last_good=last_good, start_ns=start_ns or now, end_ns=now, recv_ns=now,
                     conn=BACKFILL_CONN, detail=detail[:500], **extra)


class Backfiller:
    """Fills trade/aggTrade id gaps and missed klines from REST (see the module doc)."""

    def __init__(self, rest: RestClient, bus: Bus, *,
                 kline_keys: Callable[[], Iterable[tuple[str, str]]] = tuple,
                 server_ms: Callable[[], int] | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 30.0,
                 max_attempts: int = MAX_ATTEMPTS, page: int = PAGE,
                 gate: IdGate | None = None) -> None:
        self.rest = rest
        self.bus = bus
        # Pages pass the receive path's id gate too: an id that a live (redundant or late)
        # frame delivered meanwhile is dropped there, so nothing is recorded twice.
        self.gate = gate
        self.kline_keys = kline_keys  # (symbol, interval) of the klines subscribed now
        self.server_ms = server_ms or (lambda: time.time_ns() // 1_000_000)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.page = page  # rows per request (tests use small pages to force several)
        self.stats = BackfillStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._kline_last: dict[tuple[str, str], int] = {}  # open time last seen live
        self._kline_closed: dict[tuple[str, str], tuple[set[int], deque[int]]] = {}
        self._kline_pending: dict[tuple[str, str], int] = {}  # since this open time
        self._kline_armed: dict[tuple[str, str], int] = {}  # reconnected, no live close yet
        self._active: set[tuple[str, str, int, int]] = set()  # gaps being backfilled
        self._seen: set[tuple[str, str, int, int]] = set()  # gaps handed to us (bounded)
        self._seen_order: deque[tuple[str, str, int, int]] = deque()
        self._published: dict[tuple[str, str], int] = {}  # highest id backfilled
        self._retracted: set[tuple[str, str, int, int]] = set()  # ... that late ids filled
        self._stopping = False

    # -- wiring (inline consumers: they only schedule) -------------------------------------

    def attach(self) -> None:
        self.bus.subscribe(self.on_feed, kinds=(FeedEvent,), name="backfill", mode=Mode.INLINE)
        self.bus.subscribe(self.on_kline, kinds=(Kline,), name="backfill-klines",
                           mode=Mode.INLINE)

    @property
    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks)

    async def stop(self) -> None:
        self._stopping = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coro: Any, name: str) -> None:
        if self._stopping:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_kline(self, ev: Kline) -> None:
        bar = ev.bar
        key = (ev.symbol, bar.interval)
        if not ev.backfilled and bar.open_time >= self._kline_last.get(key, -1):
            self._kline_last[key] = bar.open_time
        if bar.closed:
            self._note_closed(key, bar.open_time)
            if not ev.backfilled and key in self._kline_armed:
                # The first live close after a reconnect: every bar before it is REST's job
                # (the new socket starts with the bar open at the reconnect, and may not
                # send that one closed).
                since = self._kline_armed.pop(key)
                if bar.open_time > since:
                    self._spawn(self._fill_klines(key, since, until_open=bar.open_time),
                                f"backfill:klines:{key[0]}:{key[1]}")

    def _note_closed(self, key: tuple[str, str], open_time: int) -> None:
        seen = self._kline_closed.get(key)
        if seen is None:
            seen = self._kline_closed[key] = (set(), deque())
        if open_time in seen[0]:
            return
        seen[0].add(open_time)
        seen[1].append(open_time)
        if len(seen[1]) > CLOSED_KEEP:
            seen[0].discard(seen[1].popleft())

    def on_feed(self, ev: FeedEvent) -> None:
        what = ev.what
        if what == "gap":
            ref = parse_stream_name(ev.stream)
            kind = ref.kind if ref is not None else ev.stream.rpartition("@")[2]
            key = (kind, ev.symbol, *gap_range(ev))
            if kind in ENDPOINTS and ev.symbol and key not in self._seen:
                self._seen.add(key)  # the same gap reported twice is fetched once
                self._seen_order.append(key)
                if len(self._seen_order) > CLOSED_KEEP:
                    self._seen.discard(self._seen_order.popleft())
                self.stats.gaps += 1
                self._spawn(self._fill_gap(kind, ev), f"backfill:{ev.stream}")
        elif what == "gap_filled" and ev.conn != BACKFILL_CONN:
            # late ids (e.g. a redundant connection) got there first; our own pages end
            # a gap through the gate too (conn = BACKFILL_CONN), that is no retraction
            ref = parse_stream_name(ev.stream)
            key = (ref.kind if ref is not None else "", ev.symbol, *gap_range(ev))
            if key in self._active:
                self._retracted.add(key)
        elif what in ("disconnect", "stale", "server_shutdown"):
            names = set(filter(None, ev.stream.split(",")))
            for key, open_time in self._kline_last.items():
                if not names or stream_name("kline", key[0], interval=key[1]) in names:
                    self._kline_pending.setdefault(key, open_time)
        elif what == "connect" and self._kline_pending:
            # Bars closed before the reconnect now; the bar open at the reconnect (and any
            # bar the new socket does not send closed) when its first live close arrives.
            pending, self._kline_pending = self._kline_pending, {}
            wanted = set(self.kline_keys())
            cutoff = ev.recv_ns // 1_000_000 + self.server_ms() - time.time_ns() // 1_000_000
            for key, since in pending.items():
                if key in wanted:
                    self._kline_armed[key] = since
                    self._spawn(self._fill_klines(key, since, cutoff_ms=cutoff),
                                f"backfill:klines:{key[0]}:{key[1]}")

    def seed_klines(self, last_closed: dict[tuple[str, str], int]) -> None:
        """After a restart: backfill each (symbol, interval) from its last recorded closed
        bar at the first connect."""
        for key, open_time in last_closed.items():
            self._note_closed(key, open_time)
            self._kline_pending.setdefault(key, open_time)

    # -- REST with the shared retry policy -------------------------------------------------

    async def _get(self, path: str, params: dict[str, str | int]) -> bytes:
        backoff = Backoff(self.backoff_initial_s, self.backoff_max_s)
        attempt = 0
        while True:
            try:
                return await self.rest.get(path, params, priority=Priority.BACKFILL)
            except RestError as exc:
                if exc.status not in _RETRY_STATUS:
                    raise _Giveup(f"{path}: {exc}") from exc
                err: BaseException = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                err = exc
            attempt += 1
            self.stats.retries += 1
            self.stats.last_error = f"{path}: {str(err)[:150] or type(err).__name__}"
            if attempt >= self.max_attempts:
                raise _Giveup(f"{path}: gave up after {attempt} attempts: "
                              f"{str(err)[:150] or type(err).__name__}")
            # 429/418 already paused every caller in the budget for Retry-After; the
            # jittered delay only spreads the retries out.
            await asyncio.sleep(backoff.next_delay())

    # -- trade / aggTrade gaps -------------------------------------------------------------

    async def _fill_gap(self, kind: str, gap: FeedEvent) -> None:
        symbol, stream = gap.symbol, gap.stream
        first, last = gap_range(gap)
        path = ENDPOINTS[kind]
        if first < 0 or last < first:
            return
        want = last - first + 1
        got = 0
        reason = ""
        lock = self._locks.setdefault((kind, symbol), asyncio.Lock())
        progress = [0]
        active = (kind, symbol, first, last)
        self._active.add(active)
        try:
            async with lock:  # one gap of a stream at a time: published in id order
                if want > MAX_GAP_IDS:
                    raise _Giveup(f"gap of {want:,} ids is over the {MAX_GAP_IDS:,} backfill "
                                  "limit")
                got, reason = await self._fetch_ids(kind, symbol, first, last, progress)
        except _Giveup as exc:
            got, reason = progress[0], str(exc)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            got, reason = progress[0], f"{path}: bad reply: {exc}"
        except asyncio.CancelledError:  # engine stopping: the ledger still says so
            self.stats.failed += 1
            self.stats.rows += progress[0]
            self.bus.publish(_feed("backfill_failed", stream, symbol, first, last,
                                   gap.last_good, gap.start_ns,
                                   f"{progress[0]} of {want} rows from {path}: stopped "
                                   "before the backfill finished"))
            raise
        finally:
            self._active.discard(active)
            self._retracted.discard(active)
        self.stats.rows += got
        if reason == _RETRACTED:
            return  # the gate's gap_filled row already retracts the gap
        if got == want and not reason:
            self.stats.filled += 1
            self.bus.publish(_feed("backfill", stream, symbol, first, last, gap.last_good,
                                   gap.start_ns, f"{got} rows from {path}"))
        else:
            self.stats.failed += 1
            self.stats.last_error = reason[:200]
            self.bus.publish(_feed("backfill_failed", stream, symbol, first, last,
                                   gap.last_good, gap.start_ns,
                                   f"{got} of {want} rows from {path}: {reason}"))

    async def _fetch_ids(self, kind: str, symbol: str, first: int, last: int,
                         progress: list[int]) -> tuple[int, str]:
        """Publish ids ``first..last``; returns (rows published, why some are missing).
        ``progress[0]`` follows the rows published so far."""
        path = ENDPOINTS[kind]
        convert = trades_from_rest if kind == "trade" else agg_trades_from_rest
        # ids an earlier, overlapping gap already backfilled are not published twice
        next_id = max(first, self._published.get((kind, symbol), first - 1) + 1)
        got, empty, unavailable = min(next_id, last + 1) - first, 0, ""
        while next_id <= last:
            body = await self._get(path, {"symbol": symbol, "fromId": next_id,
                                          "limit": min(self.page, last - next_id + 1)})
            rows = convert(body, symbol, time.time_ns())
            page = [e for e in rows if next_id <= _id(e) <= last]
            if not page:
                if rows and _id(rows[0]) > last:  # the exchange no longer has them
                    unavailable = f"ids {next_id}..{last} not available (REST starts at " \
                                  f"{_id(rows[0])})"
                    break
                empty += 1  # REST not caught up with the stream yet: try again
                if empty >= self.max_attempts:
                    return got, f"{path} returned no rows from id {next_id}"
                await asyncio.sleep(Backoff(self.backoff_initial_s, self.backoff_max_s,
                                            attempt=empty).next_delay())
                continue
            if _id(page[0]) > next_id and not unavailable:
                unavailable = f"ids {next_id}..{_id(page[0]) - 1} not available (older than " \
                              "the exchange keeps)"
            if (kind, symbol, first, last) in self._retracted:
                return got, _RETRACTED
            if self.gate is not None:
                passed: list[Any] = []
                self.gate.filter(page, passed)
                self.bus.publish_many(passed)
            else:
                self.bus.publish_many(page)
            got += len(page)
            progress[0] = got
            next_id = _id(page[-1]) + 1
            if next_id - 1 > self._published.get((kind, symbol), -1):
                self._published[(kind, symbol)] = next_id - 1
        return got, unavailable

    # -- a consumer that missed ids (the recorder during a storage failure) ---------------

    def refill(self, kind: str, symbol: str, first: int, last: int,
               sink: Callable[[Any], None], why: str) -> None:
        """Fetch ids ``first..last`` again for one consumer only.

        After a storage failure the recorder dropped ids that every other consumer had
        live, so they go to ``sink`` (not the bus, not the gate); the ledger gets a
        ``backfill`` / ``backfill_failed`` row naming ``why``.
        """
        self._spawn(self._refill(kind, symbol, first, last, sink, why),
                    f"refill:{kind}:{symbol}")

    async def _refill(self, kind: str, symbol: str, first: int, last: int,
                      sink: Callable[[Any], None], why: str) -> None:
        path = ENDPOINTS[kind]
        convert = trades_from_rest if kind == "trade" else agg_trades_from_rest
        next_id, got, reason = first, 0, ""
        lock = self._locks.setdefault((kind, symbol), asyncio.Lock())
        try:
            async with lock:
                while next_id <= last:
                    body = await self._get(path, {"symbol": symbol, "fromId": next_id,
                                                  "limit": min(self.page, last - next_id + 1)})
                    page = [e for e in convert(body, symbol, time.time_ns())
                            if next_id <= _id(e) <= last]
                    if not page:
                        reason = f"ids {next_id}..{last} not available"
                        break
                    for event in page:
                        sink(event)
                    got += len(page)
                    next_id = _id(page[-1]) + 1
        except _Giveup as exc:
            reason = str(exc)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"{path}: bad reply: {exc}"
        self.stats.rows += got
        ok = got == last - first + 1 and not reason
        self.stats.filled += ok
        self.stats.failed += not ok
        self.bus.publish(_feed("backfill" if ok else "backfill_failed",
                               stream_name(kind, symbol), symbol, first, last, first - 1, 0,
                               f"{got} rows from {path} ({why})"
                               + (f": {reason}" if reason else "")))

    # -- klines ----------------------------------------------------------------------------

    async def _fill_klines(self, key: tuple[str, str], since: int, *, cutoff_ms: int = 0,
                           until_open: int = 0) -> None:
        """Publish the closed bars ``since`` <= open time (< ``until_open``) that closed
        before ``cutoff_ms`` (exchange time; 0: now) and were not seen closed yet."""
        lock = self._locks.setdefault(("kline", f"{key[0]}:{key[1]}"), asyncio.Lock())
        async with lock:  # the two passes after a reconnect never publish a bar twice
            await self._fill_klines_locked(key, since, cutoff_ms, until_open)

    async def _fill_klines_locked(self, key: tuple[str, str], since: int, cutoff_ms: int,
                                  until_open: int) -> None:
        symbol, interval = key
        stream = stream_name("kline", symbol, interval=interval)
        published: list[int] = []
        reason = ""
        start = since
        try:
            cutoff_ms = cutoff_ms or self.server_ms()
            while True:
                params: dict[str, str | int] = {"symbol": symbol, "interval": interval,
                                                "startTime": start, "limit": self.page}
                if until_open:
                    params["endTime"] = until_open - 1
                body = await self._get(KLINES, params)
                rows = klines_from_rest(body, symbol, interval, time.time_ns(), cutoff_ms)
                closed = self._kline_closed.get(key, (set(), deque()))[0]
                page = [k for k in rows if k.bar.closed and k.bar.open_time >= since
                        and k.bar.open_time not in closed
                        and (not until_open or k.bar.open_time < until_open)]
                if page:
                    self.bus.publish_many(page)
                    for k in page:
                        self._note_closed(key, k.bar.open_time)
                    published += [k.bar.open_time for k in page]
                if len(rows) < self.page or not rows[-1].bar.closed:
                    break
                start = rows[-1].bar.open_time + 1
        except _Giveup as exc:
            reason = str(exc)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            reason = f"{KLINES}: bad reply: {exc}"
        self.stats.klines += len(published)
        first, last = (published[0], published[-1]) if published else (since, -1)
        if reason:
            self.stats.failed += 1
            self.stats.last_error = reason[:200]
            self.bus.publish(_feed("backfill_failed", stream, symbol, first, last, since, 0,
                                   f"{len(published)} closed klines from {KLINES}, then: "
                                   f"{reason}"))
        elif published:
            self.bus.publish(_feed("backfill", stream, symbol, first, last, since, 0,
                                   f"{len(published)} rows from {KLINES} (closed klines; "
                                   "first/last_missing are open times, ms)"))


async def seed_gate(gate: Any, backfiller: Backfiller | None, rest: RestClient,
                    root: Path | str, symbols: Iterable[str], timeout_s: float = 5.0) -> int:
    """After a restart on an existing recording: seed ``gate`` with each symbol's last
    recorded trade/aggTrade id, so the first live event reports the downtime as a gap.

    The recording may come from another exchange (the demo's ids start low, live
    Binance's are in the billions): one ``aggTrades?limit=1`` (weight 4) per symbol checks
    that the exchange is already past the recorded ids; when it is not, that symbol is
    not seeded. Returns the number of (stream, symbol) seeds made.
    """
    symbols = list(symbols)
    tail = await asyncio.to_thread(last_recorded, root, symbols)
    seed = getattr(gate, "seed", None)
    if seed is None:
        if tail.ids:
            log.warning("the id gate has no seed(): restart gaps are not detected")
        return 0
    seeded = 0
    for sym in symbols:
        recorded = {typ: tail.ids[(typ, sym)] for typ in (Trade, AggTrade)
                    if (typ, sym) in tail.ids}
        if not recorded:
            continue
        latest = await _latest_ids(rest, sym, timeout_s)
        same_exchange = False
        for typ, (last_id, recv_ns) in recorded.items():
            now_id = latest.get(typ, -1) if latest is not None else None
            if now_id is not None and now_id < last_id:
                log.warning("%s %s: recorded id %d is ahead of the exchange's %d (another "
                            "exchange or a reset): not seeded", sym, typ.kind, last_id, now_id)
                continue
            seed(typ, sym, last_id, recv_ns)
            seeded += 1
            same_exchange = True
        depth = tail.ids.get((DepthUpdate, sym))
        if depth is not None and same_exchange:
            # diff depth has no REST history: seeding only makes the downtime a ledgered
            # gap (the book resyncs from a snapshot at start anyway)
            seed(DepthUpdate, sym, *depth)
            seeded += 1
    if backfiller is not None and tail.klines:
        backfiller.seed_klines(tail.klines)
    return seeded


async def _latest_ids(rest: RestClient, symbol: str, timeout_s: float
                      ) -> dict[type, int] | None:
    """The exchange's newest aggTrade id and trade id (``l`` of the newest aggTrade)."""
    try:
        body = await asyncio.wait_for(rest.get("/api/v3/aggTrades",
                                               {"symbol": symbol, "limit": 1},
                                               priority=Priority.BACKFILL), timeout_s)
        rows = _aggs_dec.decode(body)
    except (RestError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError,
            msgspec.ValidationError) as exc:
        log.info("%s: cannot check the latest ids (%s); seeding anyway", symbol, exc)
        return None
    if not rows:
        return {}
    return {AggTrade: rows[-1].a, Trade: rows[-1].l}
