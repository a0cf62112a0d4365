"""BookKeeper: one LocalBook per symbol, kept in sync with diff depth + REST snapshots.

Why apart from ``engine.book.local_book``: the book is pure and fast; this is its async
edge.

* Diffs arrive through an **inline** bus consumer (cheap: ``LocalBook.on_diff``); REST is
  never awaited there. A symbol that needs a snapshot gets its own task, which waits
  for a buffered diff, fetches ``/api/v3/depth?limit=order_book.sync_limit`` with
  ``Priority.RESYNC`` and retries while the snapshot is older than the buffer. Only the
  symbol that gapped is resynced; the other books are untouched.
* A new connection (or a disconnect) means resync: ids may continue across it, but
  nothing guarantees that the frames in between were delivered.
* Each completed resync publishes a ``Ledger.RESYNC`` entry (the recorder writes it to
  ``_ledger``) with the window during which the book was not valid; each applied diff
  publishes one ``BookTop`` when any consumer wants it.
* **Audit** (hybrid mode, ``--order-book-snapshot --depth-update``): every polled
  ``OrderBookSnapshot`` is compared with the local book. A diff covers many ids, so the
  book is rarely exactly at the snapshot's id: levels touched by diffs with
  ``u > lastUpdateId`` are excluded, every other level inside both verified ranges must
  match. A book still behind the snapshot keeps the audit pending until it catches up.
  A divergence (e.g. a silently dropped level) is counted and forces a resync.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from engine.binance.rest_rows import decode_depth
from engine.binance.streams import stream_name
from engine.book import measures
from engine.book.local_book import BookState, LocalBook, Reason
from engine.bus import Bus, Mode
from engine.errors import RestError
from engine.events import BookTop, DepthUpdate, Ledger, LedgerEntry, OrderBookSnapshot
from engine.rest.client import Priority, RestClient
from engine.retry import Backoff
from engine.subscription import Change
from engine.tasks import TaskSet

log = logging.getLogger("binance_live.books")

TOP_N = 10  # levels per side in BookTop (and the imbalance window)
HISTORY = 1200  # applied diffs kept per symbol for audits (~2 min at 100 ms)
MAX_PENDING_AUDITS = 4
RETRY_MIN_S = 0.05  # snapshot retries: the one retry policy, from this delay ...
RETRY_MAX_S = 10.0  # ... up to this one


@dataclass(frozen=True)
class BookStatus:
    """One book's state and counters, for ``EngineStatus.books``."""

    symbol: str
    state: BookState
    update_id: int
    bid_levels: int
    ask_levels: int
    best_bid: float
    best_ask: float
    applied: int
    gaps: int
    crossed: int
    pruned: int
    resyncs: int
    syncs: int
    audits_ok: int
    audits_diverged: int
    audits_skipped: int
    last_resync: str


class BookKeeper:
    def __init__(self, symbols: Iterable[str], rest: RestClient, bus: Bus, *,
                 sync_limit: int = 5000, speed_ms: int = 100, top_n: int = TOP_N) -> None:
        symbols = list(symbols)
        self.rest = rest
        self.bus = bus
        self.sync_limit = sync_limit
        self.top_n = top_n
        self._speed_ms = speed_ms
        self.books: dict[str, LocalBook] = {s: LocalBook(s) for s in symbols}
        self._streams = {s: stream_name("depthUpdate", s, speed_ms=speed_ms) for s in symbols}
        self._conn: dict[str, int] = {}
        self._history: dict[str, deque[DepthUpdate]] = {s: deque(maxlen=HISTORY)
                                                        for s in symbols}
        self._pending: dict[str, list[OrderBookSnapshot]] = {s: [] for s in symbols}
        self._lost_ns: dict[str, int] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._syncing: dict[str, asyncio.Task[None]] = {}
        self._tasks = TaskSet()
        self._running = False
        self.snapshot_requests = 0
        self.snapshot_errors = 0
        self.last_error = ""
        self.audits: dict[str, list[int]] = {s: [0, 0, 0] for s in symbols}  # ok, diverged, skip
        self.last_divergence = ""
        self.audits_deferred = 0  # audits that waited for the book to reach the snapshot
        self.last_resync: dict[str, str] = {}

    def add_symbol(self, symbol: str, speed_ms: int | None = None) -> None:
        """Keep a book for a symbol added at runtime (its diffs start with SUBSCRIBE)."""
        if symbol in self.books:
            return
        speed = speed_ms if speed_ms is not None else self._speed_ms
        self.books[symbol] = LocalBook(symbol)
        self._streams[symbol] = stream_name("depthUpdate", symbol, speed_ms=speed)
        self._history[symbol] = deque(maxlen=HISTORY)
        self._pending[symbol] = []
        self.audits[symbol] = [0, 0, 0]

    def on_change(self, change: Change) -> None:
        """Subscription listener: a new symbol gets a book; diff depth off drops them."""
        if change.symbol:
            self.add_symbol(change.symbol)
        if change.kind == "depthUpdate" and change.removed:
            self.suspend()  # no diffs: the books would go silently stale

    # -- lifecycle ----------------------------------------------------------------------

    def attach(self) -> None:
        self.bus.subscribe(self.on_diff, kinds=[DepthUpdate], name="books", mode=Mode.INLINE)
        self.bus.subscribe(self.on_snapshot, kinds=[OrderBookSnapshot], name="book-audit",
                           mode=Mode.INLINE)

    def start(self) -> None:
        self._running = True
        for sym, book in self.books.items():
            if book.buffer:
                self._ensure_sync(sym)

    async def stop(self) -> None:
        self._running = False
        self._syncing.clear()
        await self._tasks.close()

    # -- receive path (inline) ------------------------------------------------------------

    def on_diff(self, diff: DepthUpdate) -> None:
        sym = diff.symbol
        book = self.books.get(sym)
        if book is None:
            return
        # Which connection delivered it does not matter: the manager's IdGate passes
        # each update id once, and the book's own U/u rule catches any gap (a
        # rollover or a redundant connection must not force a resync).
        self._conn[sym] = diff.conn
        if book.on_diff(diff):
            self._history[sym].append(diff)
            if self._pending[sym]:
                self._run_pending(sym, book)
            if self.bus.wants(BookTop):
                self.bus.publish(self.top_event(book, diff.recv_ns))
            return
        if not book.synced:
            if book.resync_reason and sym not in self._lost_ns:  # dropped by this diff
                self._lost_ns[sym] = diff.recv_ns or time.time_ns()
                self._history[sym].clear()
                self._pending[sym].clear()
            wake = self._wake.get(sym)
            if wake is not None:
                wake.set()
            self._ensure_sync(sym)

    def on_disconnect(self, conn_id: int, reason: str) -> None:
        """StreamManager listener: books fed by that connection are no longer valid."""
        if not self._running:
            return  # shutting down: keep the last books for inspection
        for sym, conn in list(self._conn.items()):
            if conn == conn_id:
                self._drop(sym, Reason.RECONNECT, time.time_ns())
                del self._conn[sym]

    def suspend(self, reason: str = Reason.UNSUBSCRIBED) -> None:
        """Diff depth turned off: every book is dropped until diffs arrive again."""
        now = time.time_ns()
        for sym in self.books:
            self._drop(sym, reason, now)
        self._conn.clear()

    def _drop(self, sym: str, reason: str, ns: int) -> None:
        book = self.books[sym]
        was = book.synced
        book.drop(reason)
        if was:
            self._lost_ns.setdefault(sym, ns or time.time_ns())
        self._pending[sym].clear()
        self._history[sym].clear()

    # -- snapshots ----------------------------------------------------------------------

    def _ensure_sync(self, sym: str) -> None:
        if not self._running or sym in self._syncing:
            return
        task = self._tasks.spawn(self._sync(sym), name=f"book-sync:{sym}")
        self._syncing[sym] = task

        def forget(done: asyncio.Task[None]) -> None:
            if self._syncing.get(sym) is done:
                del self._syncing[sym]

        task.add_done_callback(forget)

    async def _sync(self, sym: str) -> None:
        """Fetch snapshots until one bridges the buffered diffs (Binance steps 2-5)."""
        book = self.books[sym]
        wake = self._wake.setdefault(sym, asyncio.Event())
        backoff = Backoff(RETRY_MIN_S, RETRY_MAX_S)
        while not book.synced:
            while not book.buffer:  # the snapshot must be newer than a buffered diff
                wake.clear()
                await wake.wait()
            self.snapshot_requests += 1
            try:
                snap = await self.rest.fetch(
                    "/api/v3/depth", {"symbol": sym, "limit": self.sync_limit},
                    lambda body: decode_depth(body, sym, self.sync_limit, time.time_ns()),
                    priority=Priority.RESYNC)
            except RestError as exc:
                self.snapshot_errors += 1
                self.last_error = f"{sym}: {exc}"
                await asyncio.sleep(backoff.next_delay())
                continue
            if book.on_snapshot(snap):
                self._synced(sym, book, snap)
                return
            # older than the buffer: fetch again, a little later each time
            await asyncio.sleep(backoff.next_delay())

    def _synced(self, sym: str, book: LocalBook, snap: OrderBookSnapshot) -> None:
        hist = self._history[sym]
        hist.clear()
        hist.extend(book.replayed)
        self._pending[sym].clear()
        now = time.time_ns()
        if book.resync_reason:
            self.bus.publish(LedgerEntry(
                what=Ledger.RESYNC, stream=self._streams[sym], symbol=sym,
                last_good=book.lost_update_id, first_missing=book.lost_update_id + 1,
                start_ns=self._lost_ns.pop(sym, now), end_ns=now, recv_ns=now,
                conn=self._conn.get(sym, 0),
                detail=f"{book.resync_reason}; rebuilt from snapshot {snap.last_update_id} "
                       f"(limit {self.sync_limit}), book at {book.update_id}"))
            log.info("%s book resynced after %s", sym, book.resync_reason)
            self.last_resync[sym] = book.resync_reason
            book.resync_reason = ""
        self._lost_ns.pop(sym, None)
        if self.bus.wants(BookTop):
            self.bus.publish(self.top_event(book, now))

    # -- audit ----------------------------------------------------------------------------

    def on_snapshot(self, snap: OrderBookSnapshot) -> None:
        """A polled REST snapshot: audit the book now, or once it has caught up."""
        sym = snap.symbol
        book = self.books.get(sym)
        if book is None:
            return
        if not book.synced or snap.last_update_id < book.snapshot_id:
            self.audits[sym][2] += 1
            return
        if book.update_id < snap.last_update_id:
            pending = self._pending[sym]
            if len(pending) >= MAX_PENDING_AUDITS:
                pending.pop(0)
                self.audits[sym][2] += 1
            pending.append(snap)
            self.audits_deferred += 1
            return
        self._audit(sym, book, snap)

    def _run_pending(self, sym: str, book: LocalBook) -> None:
        pending = self._pending[sym]
        while pending and pending[0].last_update_id <= book.update_id and book.synced:
            self._audit(sym, book, pending.pop(0))

    def _audit(self, sym: str, book: LocalBook, snap: OrderBookSnapshot) -> None:
        last = snap.last_update_id
        hist = self._history[sym]
        if len(hist) == hist.maxlen and hist[0].first_update_id > last + 1:
            self.audits[sym][2] += 1  # diffs after the snapshot fell out of the history
            return
        touched_b: set[float] = set()
        touched_a: set[float] = set()
        for d in reversed(hist):
            if d.final_update_id <= last:
                break
            touched_b.update(p for p, _ in d.bids)
            touched_a.update(p for p, _ in d.asks)
        limit = snap.limit
        lo = book.bid_floor
        if snap.bids and (limit <= 0 or len(snap.bids) >= limit):
            lo = max(lo, snap.bids[-1][0])
        hi = book.ask_ceiling
        if snap.asks and (limit <= 0 or len(snap.asks) >= limit):
            hi = min(hi, snap.asks[-1][0])
        want_b = {p: q for p, q in snap.bids if p >= lo and p not in touched_b}
        want_a = {p: q for p, q in snap.asks if p <= hi and p not in touched_a}
        bids, asks = book.bids, book.asks
        have_b = {p: q for p, q in bids.items() if p >= lo and p not in touched_b}
        have_a = {p: q for p, q in asks.items() if p <= hi and p not in touched_a}
        if want_b == have_b and want_a == have_a:
            self.audits[sym][0] += 1
            return
        self.audits[sym][1] += 1
        self.last_divergence = (
            f"{sym} at snapshot {last} (book {book.update_id}): "
            f"bids {_diff(want_b, have_b)}; asks {_diff(want_a, have_a)}")
        log.warning("book audit diverged: %s", self.last_divergence)
        self._drop(sym, Reason.AUDIT, time.time_ns())
        self._ensure_sync(sym)

    # -- views ----------------------------------------------------------------------------

    def top_event(self, book: LocalBook, recv_ns: int) -> BookTop:
        bids, asks = book.top(self.top_n)
        bp, bq = bids[0] if bids else (math.nan, 0.0)
        ap, aq = asks[0] if asks else (math.nan, 0.0)
        return BookTop(symbol=book.symbol, update_id=book.update_id, bid_price=bp, bid_qty=bq,
                       ask_price=ap, ask_qty=aq, mid=measures.mid(bp, ap),
                       spread=measures.spread(bp, ap), spread_bps=measures.spread_bps(bp, ap),
                       imbalance=measures.levels_imbalance(bids, asks),
                       bids=bids, asks=asks, recv_ns=recv_ns)

    @property
    def audits_ok(self) -> int:
        return sum(a[0] for a in self.audits.values())

    @property
    def audits_diverged(self) -> int:
        return sum(a[1] for a in self.audits.values())

    def status(self) -> list[BookStatus]:
        out = []
        for sym, b in self.books.items():
            bb, ba = b.best_bid(), b.best_ask()
            ok, div, skip = self.audits[sym]
            out.append(BookStatus(
                symbol=sym, state=b.state, update_id=b.update_id,
                bid_levels=len(b.bids), ask_levels=len(b.asks),
                best_bid=bb[0] if bb else math.nan, best_ask=ba[0] if ba else math.nan,
                applied=b.applied, gaps=b.gaps, crossed=b.crossed, pruned=b.pruned,
                resyncs=b.resyncs, syncs=b.syncs, audits_ok=ok, audits_diverged=div,
                audits_skipped=skip, last_resync=b.resync_reason or self.last_resync.get(sym, "")))
        return out


def _diff(want: dict[float, float], have: dict[float, float]) -> str:
    bad = sorted((p for p in want.keys() | have.keys() if want.get(p) != have.get(p)),
                 reverse=True)[:3]
    return ", ".join(f"{p:g}: rest {want.get(p)} vs book {have.get(p)}" for p in bad) or "ok"
