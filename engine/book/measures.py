"""Mid, spread and imbalance of a book's top: one home, one empty-book convention.

Pure arithmetic on prices and quantities, shared by the local order book, its
``BookTop`` events and every panel that shows a book. The convention: a measure that
needs a side which is empty (or a total that is zero) is NaN, never 0.0, so "no book"
is never mistaken for "a balanced book at price 0".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

NAN = math.nan
Level = tuple[float, float]


def mid(bid: float, ask: float) -> float:
    """(bid + ask) / 2; NaN when either price is NaN."""
    return (bid + ask) / 2


def spread(bid: float, ask: float) -> float:
    return ask - bid


def spread_bps(bid: float, ask: float) -> float:
    """Spread in basis points of the mid; NaN without a positive mid."""
    m = mid(bid, ask)
    return (ask - bid) / m * 1e4 if m > 0 else NAN


def side_qty(levels: Iterable[Level]) -> float:
    """Total quantity of some levels."""
    return sum(q for _, q in levels)


def imbalance(bid_qty: float, ask_qty: float) -> float:
    """(bid − ask) / (bid + ask), in [−1, 1]; NaN when both are empty."""
    total = bid_qty + ask_qty
    return (bid_qty - ask_qty) / total if total > 0 else NAN


def levels_imbalance(bids: Iterable[Level], asks: Iterable[Level]) -> float:
    """:func:`imbalance` over the given levels of each side."""
    return imbalance(side_qty(bids), side_qty(asks))
