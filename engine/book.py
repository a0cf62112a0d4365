"""A local order book kept from diff depth + a REST snapshot, per Binance's procedure.

Pure logic, no I/O: feed it ``DepthUpdate`` events as they arrive and a snapshot when
you have one. Diffs are buffered from the start, so a bridging diff that arrives
*before* the snapshot (seen in real recordings) is not lost. Spot continuity is checked
only with ``U == previous u + 1`` (spot has no ``pu``); any gap drops the book back to
buffering and asks for a new snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from sortedcontainers import SortedDict

from engine.models import DepthUpdate, Level, OrderBookSnapshot, PartialDepth


class BookState(StrEnum):
    BUFFERING = "buffering"  # waiting for a snapshot that bridges the buffered diffs
    SYNCED = "synced"


class LocalBook:
    MAX_BUFFER = 10_000  # diffs kept while waiting for a snapshot (bounded: ~17 min at 100 ms)

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids: SortedDict = SortedDict()  # price -> qty, best = last
        self.asks: SortedDict = SortedDict()  # price -> qty, best = first
        self.update_id = 0
        self.state = BookState.BUFFERING
        self.buffer: list[DepthUpdate] = []
        self.gaps = 0
        self.resyncs = 0
        self.stale_snapshots = 0
        self.buffer_overflows = 0

    @property
    def needs_snapshot(self) -> bool:
        return self.state is BookState.BUFFERING

    def on_diff(self, diff: DepthUpdate) -> None:
        if self.state is BookState.BUFFERING:
            if len(self.buffer) >= self.MAX_BUFFER:
                self.buffer.pop(0)
                self.buffer_overflows += 1
            self.buffer.append(diff)
            return
        if diff.final_update_id <= self.update_id:
            return  # stale: already in the book
        if diff.first_update_id > self.update_id + 1:
            self.gaps += 1
            self._restart(diff)
            return
        self._apply(diff)

    def on_snapshot(self, snap: OrderBookSnapshot | PartialDepth) -> bool:
        """Load a snapshot if it bridges the buffer; False means fetch another one."""
        last = snap.last_update_id
        if self.buffer and last + 1 < self.buffer[0].first_update_id:
            self.stale_snapshots += 1  # older than everything buffered: useless
            return False
        self.bids.clear()
        self.asks.clear()
        _set_levels(self.bids, snap.bids)
        _set_levels(self.asks, snap.asks)
        self.update_id = last
        pending = [d for d in self.buffer if d.final_update_id > last]
        self.buffer = []
        self.state = BookState.SYNCED
        if pending and not pending[0].first_update_id <= last + 1 <= pending[0].final_update_id:
            self.gaps += 1
            self._restart(None)
            self.buffer = pending
            return False
        for diff in pending:
            self.on_diff(diff)
            if self.state is BookState.BUFFERING:
                return False
        return True

    def _restart(self, diff: DepthUpdate | None) -> None:
        self.state = BookState.BUFFERING
        self.resyncs += 1
        self.buffer = [diff] if diff is not None else []

    def _apply(self, diff: DepthUpdate) -> None:
        _set_levels(self.bids, diff.bids)
        _set_levels(self.asks, diff.asks)
        self.update_id = diff.final_update_id

    # -- views ------------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> Level | None:
        return self.asks.peekitem(0) if self.asks else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        bids = [self.bids.peekitem(-1 - i) for i in range(min(n, len(self.bids)))]
        asks = [self.asks.peekitem(i) for i in range(min(n, len(self.asks)))]
        return bids, asks


def _set_levels(side: SortedDict, levels: Iterable[Level]) -> None:
    for price, qty in levels:
        if qty == 0.0:
            side.pop(price, None)
        else:
            side[price] = qty
