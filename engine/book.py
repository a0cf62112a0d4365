"""A local order book kept from diff depth + a REST snapshot, per Binance's procedure.

Pure logic, no I/O, no clock: feed it ``DepthUpdate`` events as they arrive and a
snapshot when you have one (``engine.books.BookKeeper`` does both for the engine).

The procedure (binance-protocol.md §7), and why each step is here:

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

from sortedcontainers import SortedDict

from engine.models import DepthUpdate, Level, OrderBookSnapshot, PartialDepth

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
_dict_set = dict.__setitem__  # SortedDict is a dict (+ a SortedList of its keys)
_dict_del = dict.__delitem__


class LocalBook:
    MAX_BUFFER = 10_000  # diffs kept while waiting for a snapshot (bounded: ~17 min at 100 ms)

    def __init__(self, symbol: str, max_buffer: int = MAX_BUFFER,
                 resync_when_exhausted: bool = True) -> None:
        self.symbol = symbol
        self.bids: SortedDict = SortedDict()  # price -> qty, best = last
        self.asks: SortedDict = SortedDict()  # price -> qty, best = first
        self._bid_keys = self.bids.keys()
        self._ask_keys = self.asks.keys()
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
        # -- apply (hot path: local lookups, no allocation beyond the SortedDict ops) --
        # Most levels are added or removed (real BTCUSDT: 74 %): the SortedDict's own key
        # list and the dict are updated directly, which saves a Python frame per level.
        bids = self.bids
        blist = bids._list  # noqa: SLF001 - SortedList of the keys (sortedcontainers 2.x)
        floor = self.bid_floor
        pruned = 0
        for price, qty in diff.bids:
            if price in bids:
                if qty == 0.0:
                    _dict_del(bids, price)
                    blist.remove(price)
                else:
                    _dict_set(bids, price, qty)
            elif qty == 0.0:
                pass  # removing a level we do not have is normal
            elif price >= floor:
                _dict_set(bids, price, qty)
                blist.add(price)
            else:
                pruned += 1
        asks = self.asks
        alist = asks._list  # noqa: SLF001
        ceiling = self.ask_ceiling
        for price, qty in diff.asks:
            if price in asks:
                if qty == 0.0:
                    _dict_del(asks, price)
                    alist.remove(price)
                else:
                    _dict_set(asks, price, qty)
            elif qty == 0.0:
                pass
            elif price <= ceiling:
                _dict_set(asks, price, qty)
                alist.add(price)
            else:
                pruned += 1
        self.update_id = diff.final_update_id
        self.applied += 1
        if pruned:
            self.pruned += pruned
        if bids and asks:
            if self._bid_keys[-1] >= self._ask_keys[0]:
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
        if buf and last + 1 < buf[0].first_update_id:
            self.stale_snapshots += 1  # older than everything buffered: cannot bridge
            return False
        pending = [d for d in buf if d.final_update_id > last]
        if pending and pending[0].first_update_id > last + 1:
            self.stale_snapshots += 1  # cannot happen with a contiguous buffer; be safe
            return False
        buf.clear()
        if limit is None:
            limit = getattr(snap, "limit", 0)
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
        self.bids.clear()
        self.asks.clear()
        self.bids.update([lv for lv in bids if lv[1]])
        self.asks.update([lv for lv in asks if lv[1]])
        truncated_b = bool(bids) and (limit <= 0 or len(bids) >= limit)
        truncated_a = bool(asks) and (limit <= 0 or len(asks) >= limit)
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
        self.buffer.clear()
        self.replayed = []

    # -- views (all within the verified range, empty while not synced) ----------------

    def best_bid(self) -> Level | None:
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks.peekitem(0) if self.asks else None

    def mid(self) -> float:
        """Mid price; NaN unless both sides have a level."""
        if not self.bids or not self.asks:
            return NAN
        return (self._bid_keys[-1] + self._ask_keys[0]) / 2

    def spread(self) -> float:
        if not self.bids or not self.asks:
            return NAN
        return self._ask_keys[0] - self._bid_keys[-1]

    def spread_bps(self) -> float:
        mid = self.mid()
        return self.spread() / mid * 1e4 if mid == mid and mid else NAN

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """The best ``n`` levels of each side, best first."""
        bids, asks = self.bids, self.asks
        b = [(p, bids[p]) for p in bids.islice(max(0, len(bids) - n), None, reverse=True)]
        a = [(p, asks[p]) for p in asks.islice(0, n)]
        return b, a

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
        return sum(q for _, q in b), sum(q for _, q in a)

    def imbalance(self, n: int = 10) -> float:
        """(bid qty - ask qty) / (bid qty + ask qty) over the best ``n`` levels; NaN if empty."""
        b, a = self.depth(n)
        return (b - a) / (b + a) if b + a > 0 else NAN

    def levels(self) -> tuple[dict[float, float], dict[float, float]]:
        """Copies of both sides as plain dicts (for comparisons)."""
        return dict(self.bids), dict(self.asks)
