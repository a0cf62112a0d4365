"""A local order book kept from diff depth + a REST snapshot, per Binance's procedure.

Pure logic, no I/O, no clock: feed it ``DepthUpdate`` events as they arrive and a
snapshot when you have one (``engine.book.keeper.BookKeeper`` does both for the engine).

Binance's procedure for a local book, and why each step is here:

* diffs are **buffered from the start**, so a bridging diff that arrives *before* the
  REST reply (seen in the real BTCUSDT 2024 recording) is not lost;
* a snapshot older than the buffer (``lastUpdateId + 1 < first U``) cannot bridge:
  ``on_snapshot`` returns False and the caller fetches another;
* buffered diffs with ``u <= lastUpdateId`` are dropped; the next must satisfy
  ``U <= lastUpdateId + 1 <= u``; afterwards ``u <= id`` is stale (ignored) and
  ``U > id + 1`` is a **gap**: the book is dropped and rebuilt. Spot has no ``pu``.

Never silently wrong, so two more conditions drop the book (``resync_reason``):

* **crossed**: best bid >= best ask after a diff means the book is corrupt;
* **beyond depth**: a snapshot truncated at its limit only vouches for prices down to
  its worst bid / up to its worst ask (``bid_floor`` / ``ask_ceiling``). A level set
  outside that range has unknown neighbours, so it is counted (``pruned``) and not
  kept; every view is therefore within the verified range. The range itself stays
  exact. If the market moves past it (a truncated side has no verified level left) the
  book counts it (``exhausted``) and, by default, drops itself so that a fresh snapshot
  centred on the new price is fetched; with ``resync_when_exhausted=False`` (replaying a
  recording that has no later snapshot) that side just reads empty until prices return.

While the book is not synced it is empty: no view shows stale levels.
"""

from __future__ import annotations

import math
from collections import deque
from enum import StrEnum
from heapq import heapify, heappop, heappush, nlargest, nsmallest

from engine.book import measures
from engine.events import DepthUpdate, Level, OrderBookSnapshot, PartialDepth

INF = math.inf
NAN = math.nan


class BookState(StrEnum):
    BUFFERING = "buffering"  # waiting for a snapshot that bridges the buffered diffs
    SYNCED = "synced"


class Reason(StrEnum):
    """Why a synced book was dropped (and will be rebuilt)."""

    GAP = "gap"
    CROSSED = "crossed"
    DEPTH_EXHAUSTED = "depth_exhausted"
    RECONNECT = "reconnect"
    AUDIT = "audit"
    UNSUBSCRIBED = "unsubscribed"


_SYNCED = BookState.SYNCED
_COMPACT_SLACK = 256  # stale heap entries tolerated beyond one per live level


class LocalBook:
    MAX_BUFFER = 10_000  # diffs kept while waiting for a snapshot (bounded: ~17 min at 100 ms)

    def __init__(self, symbol: str, max_buffer: int = MAX_BUFFER,
                 resync_when_exhausted: bool = True) -> None:
        self.symbol = symbol
        # Each side is a plain dict (price -> qty) plus a lazy heap of its prices (bids
        # negated): a new level costs one C-level heappush, a removed one nothing (its
        # heap entry goes stale and is skipped when it reaches the top). That is ~3x
        # cheaper per level than a sorted container; full orderings (top(n)) are taken
        # from the dict when a view asks, at UI rate.
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._bid_heap: list[float] = []  # -price
        self._ask_heap: list[float] = []
        self.update_id = 0
        self.snapshot_id = 0  # lastUpdateId of the snapshot the current book was built from
        self.state = BookState.BUFFERING
        self.buffer: deque[DepthUpdate] = deque()
        self.max_buffer = max_buffer
        self.resync_when_exhausted = resync_when_exhausted
        self.depth_exhausted = False  # a truncated side has no verified level right now
        self.bid_floor = -INF  # lowest bid price the snapshot vouched for
        self.ask_ceiling = INF  # highest ask price the snapshot vouched for
        self.replayed: list[DepthUpdate] = []  # buffered diffs applied by the last sync
        self.bridged_from_buffer = False  # last sync: the bridging diff came before the snapshot
        self.resync_reason = ""  # set when a synced book is dropped, cleared by the caller
        self.lost_update_id = -1  # the last good id before that drop
        # counters
        self.applied = 0
        self.stale = 0
        self.gaps = 0
        self.crossed = 0
        self.exhausted = 0
        self.pruned = 0
        self.syncs = 0
        self.resyncs = 0
        self.stale_snapshots = 0
        self.buffer_overflows = 0

    @property
    def synced(self) -> bool:
        return self.state is _SYNCED

    @property
    def needs_snapshot(self) -> bool:
        return self.state is not _SYNCED

    # -- feeding ----------------------------------------------------------------------

    def on_diff(self, diff: DepthUpdate) -> bool:
        """Buffer or apply one diff; True when it was applied and the book is still synced."""
        if self.state is not _SYNCED:
            self._buffer(diff)
            return False
        uid = self.update_id
        if diff.final_update_id <= uid:
            self.stale += 1
            return False
        if diff.first_update_id > uid + 1:
            self.gaps += 1
            self.drop(Reason.GAP)
            self._buffer(diff)  # it starts the new buffer (step 2 of the procedure)
            return False
        # -- apply (hot path: local lookups, dict ops and C heap pushes only) --
        bids = self.bids
        bheap = self._bid_heap
        floor = self.bid_floor
        pruned = 0
        for price, qty in diff.bids:
            if price in bids:
                if qty == 0.0:
                    del bids[price]
                else:
                    bids[price] = qty
            elif qty == 0.0:
                pass  # removing a level we do not have is normal
            elif price >= floor:
                bids[price] = qty
                heappush(bheap, -price)
            else:
                pruned += 1
        asks = self.asks
        aheap = self._ask_heap
        ceiling = self.ask_ceiling
        for price, qty in diff.asks:
            if price in asks:
                if qty == 0.0:
                    del asks[price]
                else:
                    asks[price] = qty
            elif qty == 0.0:
                pass
            elif price <= ceiling:
                asks[price] = qty
                heappush(aheap, price)
            else:
                pruned += 1
        self.update_id = diff.final_update_id
        self.applied += 1
        if pruned:
            self.pruned += pruned
        if len(bheap) > 2 * len(bids) + _COMPACT_SLACK:
            self._bid_heap = bheap = [-p for p in bids]
            heapify(bheap)
        if len(aheap) > 2 * len(asks) + _COMPACT_SLACK:
            self._ask_heap = aheap = list(asks)
            heapify(aheap)
        if bids and asks:
            if self._best_bid_price() >= self._best_ask_price():
                self.crossed += 1
                self.drop(Reason.CROSSED)
                return False
            if self.depth_exhausted:
                self.depth_exhausted = False
            return True
        # an empty side: fine for a complete (thin) side, not for a truncated one
        exhausted = (not bids and floor > -INF) or (not asks and ceiling < INF)
        if exhausted and not self.depth_exhausted:
            self.exhausted += 1
            if self.resync_when_exhausted:
                self.drop(Reason.DEPTH_EXHAUSTED)
                return False
        self.depth_exhausted = exhausted
        return True

    def _buffer(self, diff: DepthUpdate) -> None:
        buf = self.buffer
        if buf:
            last = buf[-1].final_update_id
            if diff.final_update_id <= last:
                self.stale += 1
                return
            if diff.first_update_id > last + 1:
                self.gaps += 1  # what is buffered can no longer be bridged
                buf.clear()
        if len(buf) >= self.max_buffer:
            buf.popleft()
            self.buffer_overflows += 1
        buf.append(diff)

    def on_snapshot(self, snap: OrderBookSnapshot | PartialDepth, limit: int | None = None) -> bool:
        """Load a snapshot if it bridges the buffer; False means fetch another one.

        ``limit`` is the snapshot's requested depth (default: ``snap.limit``; 0 = unknown,
        treated as truncated). A side with ``limit`` levels is taken as truncated at its
        worst price, which becomes the verified boundary of that side.
        """
        last = snap.last_update_id
        buf = self.buffer
        pending = [d for d in buf if d.final_update_id > last]
        if pending and pending[0].first_update_id > last + 1:
            # older than the buffer (``lastUpdateId + 1 < first U``; then every buffered
            # diff is pending) or a hole in a hand-filled buffer: cannot bridge
            self.stale_snapshots += 1
            return False
        buf.clear()
        if limit is None:
            limit = getattr(snap, "limit", 0)  # pragma: no mutate (equivalent: 1 acts as 0 here)
        self._load(snap.bids, snap.asks, limit)
        self.update_id = self.snapshot_id = last
        self.state = _SYNCED
        self.depth_exhausted = False
        self.bridged_from_buffer = bool(pending)
        for i, diff in enumerate(pending):
            if not self.on_diff(diff) and self.state is not _SYNCED:
                for rest in pending[i + 1:]:
                    self._buffer(rest)
                self.replayed = []
                return False
        self.replayed = pending
        self.syncs += 1
        return True

    def _load(self, bids: list[Level], asks: list[Level], limit: int) -> None:
        self.bids = {p: q for p, q in bids if q}
        self.asks = {p: q for p, q in asks if q}
        self._bid_heap = [-p for p in self.bids]
        self._ask_heap = list(self.asks)
        heapify(self._bid_heap)
        heapify(self._ask_heap)
        # a limit <= 0 (unknown) always passes ``len >= limit``: such a side reads truncated
        truncated_b = bool(bids) and len(bids) >= limit
        truncated_a = bool(asks) and len(asks) >= limit
        self.bid_floor = min(p for p, _ in bids) if truncated_b else -INF
        self.ask_ceiling = max(p for p, _ in asks) if truncated_a else INF

    def drop(self, reason: str) -> None:
        """Forget the book and buffer; a synced book records ``resync_reason``."""
        if self.state is _SYNCED:
            self.resyncs += 1
            self.resync_reason = str(reason)
            self.lost_update_id = self.update_id
        self.state = BookState.BUFFERING
        self.bids.clear()
        self.asks.clear()
        self._bid_heap.clear()
        self._ask_heap.clear()
        self.buffer.clear()
        self.replayed = []

    # -- views (all within the verified range, empty while not synced) ----------------

    def _best_bid_price(self) -> float:
        """Best bid price (the side must not be empty); pops stale heap entries."""
        heap, bids = self._bid_heap, self.bids
        while -heap[0] not in bids:
            heappop(heap)
        return -heap[0]

    def _best_ask_price(self) -> float:
        heap, asks = self._ask_heap, self.asks
        while heap[0] not in asks:
            heappop(heap)
        return heap[0]

    def best_bid(self) -> Level | None:
        if not self.bids:
            return None
        p = self._best_bid_price()
        return p, self.bids[p]

    def best_ask(self) -> Level | None:
        if not self.asks:
            return None
        p = self._best_ask_price()
        return p, self.asks[p]

    def _best_prices(self) -> tuple[float, float]:
        """(best bid, best ask); NaN for an empty side."""
        return (self._best_bid_price() if self.bids else NAN,
                self._best_ask_price() if self.asks else NAN)

    def mid(self) -> float:
        """Mid price; NaN unless both sides have a level."""
        return measures.mid(*self._best_prices())

    def spread(self) -> float:
        return measures.spread(*self._best_prices())

    def spread_bps(self) -> float:
        return measures.spread_bps(*self._best_prices())

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels of each side, best first."""
        bids, asks = self.bids, self.asks
        if n == 1:  # the common BookTop case: no full scan
            b: list[Level] = []
            a: list[Level] = []
            if bids:
                p = self._best_bid_price()
                b.append((p, bids[p]))
            if asks:
                p = self._best_ask_price()
                a.append((p, asks[p]))
            return b, a
        return ([(p, bids[p]) for p in nlargest(n, bids)],
                [(p, asks[p]) for p in nsmallest(n, asks)])

    def cumulative(self, n: int) -> tuple[list[Level], list[Level]]:
        """(price, quantity at this price or better) for the best ``n`` levels per side."""
        out: list[list[Level]] = []
        for side in self.top(n):
            total = 0.0
            rows: list[Level] = []
            for p, q in side:
                total += q
                rows.append((p, total))
            out.append(rows)
        return out[0], out[1]

    def depth(self, n: int) -> tuple[float, float]:
        """Total bid and ask quantity over the best ``n`` levels."""
        b, a = self.top(n)
        return measures.side_qty(b), measures.side_qty(a)

    def imbalance(self, n: int = 10) -> float:
        """(bid qty - ask qty) / (bid qty + ask qty) over the best ``n`` levels; NaN if empty."""
        return measures.imbalance(*self.depth(n))

    def levels(self) -> tuple[dict[float, float], dict[float, float]]:
        """Copies of both sides as plain dicts (for comparisons)."""
        return dict(self.bids), dict(self.asks)
