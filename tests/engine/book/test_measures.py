"""Mid, spread, imbalance: one home, and an empty side is NaN, never 0."""

from __future__ import annotations

import math

from engine.book import measures
from engine.book.local_book import LocalBook

NAN = math.nan


def test_the_arithmetic() -> None:
    assert measures.mid(99.0, 101.0) == 100.0
    assert measures.spread(99.0, 101.0) == 2.0
    assert measures.spread_bps(99.0, 101.0) == 200.0
    assert measures.imbalance(3.0, 1.0) == 0.5
    assert measures.levels_imbalance([(1.0, 2.0), (0.9, 1.0)], [(1.1, 1.0)]) == 0.5


def test_an_empty_book_is_nan_everywhere() -> None:
    assert math.isnan(measures.mid(NAN, 101.0)) and math.isnan(measures.spread(99.0, NAN))
    assert math.isnan(measures.spread_bps(NAN, NAN)) and math.isnan(measures.imbalance(0, 0))
    book = LocalBook("X")  # not synced: empty
    assert all(math.isnan(v) for v in (book.mid(), book.spread(), book.spread_bps(),
                                       book.imbalance()))
