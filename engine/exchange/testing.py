"""Helpers for tests that act as a raw Binance client (no client code from engine/)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BookRebuilder:
    """Binance's documented local order book procedure (buffer, snapshot, bridge, apply).

    Feed every diff with :meth:`on_diff` from the moment the socket opens, and the
    REST snapshot with :meth:`on_snapshot`. `gaps` counts detected sequence gaps.
    """

    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)
    book_id: int | None = None
    buffer: list[dict] = field(default_factory=list)
    gaps: int = 0
    applied: int = 0

    def on_snapshot(self, snap: dict) -> bool:
        """Load a snapshot; False when it is older than the first buffered event."""
        if self.buffer and snap["lastUpdateId"] < self.buffer[0]["U"] - 1:
            return False
        self.bids = {p: q for p, q in snap["bids"]}
        self.asks = {p: q for p, q in snap["asks"]}
        self.book_id = snap["lastUpdateId"]
        pending, self.buffer = self.buffer, []
        for ev in pending:
            self.on_diff(ev)
        return True

    def on_diff(self, ev: dict) -> None:
        if self.book_id is None:
            self.buffer.append(ev)
            return
        if ev["u"] <= self.book_id:
            return
        if ev["U"] > self.book_id + 1:
            self.gaps += 1
            self.book_id = None
            self.bids, self.asks = {}, {}
            self.buffer = [ev]
            return
        for side, rows in ((self.bids, ev["b"]), (self.asks, ev["a"])):
            for price, qty in rows:
                if float(qty) == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.book_id = ev["u"]
        self.applied += 1
