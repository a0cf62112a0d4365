"""IdGate: first-arrival-wins de-duplication, reorder tolerance and the gap ledger."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    LedgerEntry,
    MiniTicker,
    PartialDepth,
    Trade,
)
from engine.feed.gate import MAX_HOLES, IdGate
from tests import factories

# Events come on connection 1 unless said; trades, aggTrades and diffs get recv_ns = their id.


def trade(i: int, conn: int = 1, sym: str = "BTCUSDT", ns: int = 0) -> Trade:
    return factories.trade(i, symbol=sym, recv_ns=ns or i, conn=conn)


def agg(i: int, conn: int = 1) -> AggTrade:
    return factories.agg_trade(i, recv_ns=i, conn=conn)


def diff(first: int, last: int, conn: int = 1) -> DepthUpdate:
    return factories.depth_update(first, last, recv_ns=last, conn=conn)


def book(u: int, conn: int = 1) -> BookTicker:
    return factories.book_ticker(u, conn=conn)


def partial(u: int, conn: int = 1) -> PartialDepth:
    return factories.partial_depth(u, conn=conn)


def kline(open_time: int, last: int, closed: bool, conn: int = 1,
          interval: str = "1m") -> Kline:
    return factories.kline(open_time, interval=interval, last_trade_id=last, closed=closed,
                           quote_volume=1.0, event_time=1, conn=conn)


def run(gate: IdGate, events: list[Any]) -> tuple[list[Any], list[LedgerEntry]]:
    out: list[Any] = []
    gate.filter(events, out)
    return ([e for e in out if not isinstance(e, LedgerEntry)],
            [e for e in out if isinstance(e, LedgerEntry)])


def ids(events: list[Any]) -> list[int]:
    return [e.trade_id for e in events]


def test_contiguous_ids_pass_and_duplicates_from_any_connection_are_dropped() -> None:
    gate = IdGate()
    stream = [trade(i, conn=1) for i in range(100, 110)]
    overlap = [trade(i, conn=2) for i in range(105, 115)]
    kept, feed = run(gate, [*stream[:6], *overlap[:3], *stream[6:], *overlap[3:]])
    assert ids(kept) == list(range(100, 115))
    assert feed == [] and gate.duplicates == 5 and gate.gaps == 0


def test_gap_is_reported_with_its_whole_range() -> None:
    gate = IdGate()
    kept, feed = run(gate, [trade(1, ns=10), trade(2, ns=20), trade(7, conn=3, ns=70)])
    assert ids(kept) == [1, 2, 7]
    (gap,) = feed
    assert (gap.what, gap.stream, gap.symbol) == ("gap", "btcusdt@trade", "BTCUSDT")
    assert (gap.last_good, gap.first_missing, gap.last_missing) == (2, 3, 6)
    assert (gap.start_ns, gap.end_ns, gap.conn) == (20, 70, 3)
    assert gap.detail == "4 ids missing" and gate.gaps == 1


def test_reorder_inside_a_gap_is_kept_then_the_gap_is_retracted() -> None:
    gate = IdGate()
    kept, feed = run(gate, [trade(1), trade(2), trade(5), trade(3), trade(3), trade(6),
                            trade(4)])
    assert ids(kept) == [1, 2, 5, 3, 6, 4]  # nothing lost, the second 3 dropped
    assert [(f.what, f.first_missing, f.last_missing) for f in feed] == [
        ("gap", 3, 4), ("gap_filled", 3, 4)]
    # the retraction comes just before the id that completed it
    out: list[Any] = []
    gate2 = IdGate()
    gate2.filter([trade(1), trade(3), trade(2)], out)
    assert [getattr(e, "what", e.trade_id if isinstance(e, Trade) else None) for e in out] \
        == [1, "gap", 3, "gap_filled", 2]
    assert gate.late == 2 and gate.duplicates == 1 and gate.gaps_filled == 1
    assert gate.open_gaps(Trade, "BTCUSDT") == []


def test_partly_filled_gap_stays_open() -> None:
    gate = IdGate()
    _, feed = run(gate, [trade(1), trade(10), trade(4), trade(5)])
    assert [f.what for f in feed] == ["gap"]
    assert gate.open_gaps(Trade, "BTCUSDT") == [(2, 9)]
    _, feed = run(gate, [trade(i) for i in (2, 3, 6, 7, 8, 9)])
    assert [f.what for f in feed] == ["gap_filled"]


def test_open_gaps_are_bounded() -> None:
    gate = IdGate(max_open_gaps=4)
    run(gate, [trade(i) for i in range(0, 20, 2)])  # 9 gaps of one id each
    assert gate.gaps == 9 and gate.gaps_forgotten == 5
    assert gate.open_gaps(Trade, "BTCUSDT") == [(11, 11), (13, 13), (15, 15), (17, 17)]
    kept, _ = run(gate, [trade(1), trade(17)])  # 1 is forgotten: a duplicate now
    assert ids(kept) == [17]


def test_depth_ranges_overlap_gap_and_duplicate() -> None:
    gate = IdGate()
    kept, feed = run(gate, [diff(100, 110), diff(111, 120), diff(105, 125, conn=2),
                            diff(121, 125), diff(112, 118, conn=2), diff(130, 140)])
    assert [(e.first_update_id, e.final_update_id) for e in kept] == [
        (100, 110), (111, 120), (105, 125), (130, 140)]
    assert gate.overlaps == 1 and gate.duplicates == 2
    (gap,) = feed
    assert (gap.stream, gap.first_missing, gap.last_missing, gap.last_good) == (
        "btcusdt@depth@100ms", 126, 129, 125)
    # a late diff from another connection covering the gap fills it
    kept, feed = run(gate, [diff(126, 131, conn=2)])
    assert len(kept) == 1 and [f.what for f in feed] == ["gap_filled"]


def test_each_kind_and_symbol_has_its_own_sequence() -> None:
    gate = IdGate()
    kept, feed = run(gate, [trade(5), agg(5), trade(5, sym="ETHUSDT"), trade(6), agg(6),
                            trade(6, sym="ETHUSDT")])
    assert len(kept) == 6 and feed == []


def test_book_ticker_and_partial_depth_are_dedup_only() -> None:
    gate = IdGate()
    kept, feed = run(gate, [book(10), book(15), book(12, conn=2), book(15, conn=2),
                            book(20, conn=2), book(20), book(30)])
    assert [e.update_id for e in kept] == [10, 15, 20, 30] and feed == []
    gate = IdGate()
    # the owner's unchanged snapshot repeats; the other connection's copy is dropped
    kept, _ = run(gate, [partial(7), partial(7, conn=2), partial(7), partial(8, conn=2),
                         partial(8), partial(8, conn=2)])
    assert [(e.last_update_id, e.conn) for e in kept] == [(7, 1), (7, 1), (8, 2), (8, 2)]
    # once the owner is retired, the next connection takes the key over
    gate.retire(2)
    kept, _ = run(gate, [partial(8, conn=3), partial(8, conn=3), partial(9, conn=3)])
    assert [(e.last_update_id, e.conn) for e in kept] == [(8, 3), (9, 3)]


def test_kline_tuple_rule() -> None:
    gate = IdGate()
    kept, _ = run(gate, [
        kline(0, 10, False), kline(0, 10, False, conn=2),  # same update twice: one kept
        kline(0, 12, False, conn=2), kline(0, 12, False),
        kline(0, 12, True), kline(0, 12, True, conn=2),  # the close
        kline(0, 12, False, conn=2),  # older than the close: dropped
        kline(60_000, 12, False, conn=2), kline(60_000, 12, False),
        kline(0, 5, True, interval="1s"),  # another interval is another key
    ])
    assert [(k.bar.open_time, k.bar.last_trade_id, k.bar.closed, k.bar.interval)
            for k in kept] == [(0, 10, False, "1m"), (0, 12, False, "1m"), (0, 12, True, "1m"),
                               (60_000, 12, False, "1m"), (0, 5, True, "1s")]


def test_seed_continues_a_recording() -> None:
    gate = IdGate()
    gate.seed(Trade, "BTCUSDT", 100, recv_ns=5)
    gate.seed(BookTicker, "BTCUSDT", 50)
    gate.seed(Kline, "BTCUSDT", 1)  # no single id: ignored
    kept, feed = run(gate, [trade(99), trade(100), trade(101), trade(105, ns=500)])
    assert ids(kept) == [101, 105]
    (gap,) = feed
    assert (gap.first_missing, gap.last_missing, gap.start_ns) == (102, 104, 101)
    assert gate.last_id(Trade, "BTCUSDT") == 105
    gate.seed(Trade, "BTCUSDT", 90)  # never moves the mark back
    assert gate.last_id(Trade, "BTCUSDT") == 105
    kept, _ = run(gate, [book(50), book(51)])
    assert [e.update_id for e in kept] == [51]
    gate2 = IdGate()
    gate2.seed(Trade, "BTCUSDT", 10)
    kept, feed = run(gate2, [trade(11)])
    assert ids(kept) == [11] and feed == []


def test_other_events_pass_untouched() -> None:
    gate = IdGate()
    mini = MiniTicker(event_time=1, symbol="BTCUSDT", close=1.0, open=1.0, high=1.0, low=1.0,
                      volume=1.0, quote_volume=1.0)
    fe = LedgerEntry(what="connect")
    out: list[Any] = []
    gate.filter([mini, fe, mini, fe], out)
    assert out == [mini, fe, mini, fe]


def check_stream(arrivals: list[int]) -> None:
    """Kept ids are the unique ids, once each; every missing range is a gap, exactly."""
    gate = IdGate(max_open_gaps=10_000)
    kept, feed = run(gate, [trade(i, conn=1 + (n % 2)) for n, i in enumerate(arrivals)])
    got = ids(kept)
    assert len(got) == len(set(got)), "no duplicates"
    assert set(got) == set(arrivals), "nothing unique is lost"
    # replay the ledger: open ranges minus filled ones must be exactly what never came
    open_: set[tuple[int, int]] = set()
    for f in feed:
        rng = (f.first_missing, f.last_missing)
        assert f.last_good == f.first_missing - 1
        if f.what == "gap":
            open_.add(rng)
        else:
            open_.remove(rng)
    lo, hi = arrivals[0], max(arrivals)
    never = set(range(lo, hi + 1)) - set(arrivals)
    for a, b in open_:  # a gap still open really misses something
        assert any(i in never for i in range(a, b + 1)), (a, b)
    reported = {i for a, b in open_ for i in range(a, b + 1)}
    assert {i for i in never if i > lo} <= reported, "every missing id is in an open gap"
    assert gate.gaps - gate.gaps_filled == len(open_)


def random_arrivals(rng: random.Random, n: int) -> list[int]:
    base = 1_000
    ids_ = [base + i for i in range(n) if rng.random() > 0.08]  # drops
    out: list[int] = []
    for i in ids_:
        out.append(i)
        if rng.random() < 0.15:  # a duplicate (another connection, a replay)
            out.append(rng.choice(out))
    for _ in range(n // 8):  # local reorders
        j = rng.randrange(1, len(out))
        k = min(len(out) - 1, j + rng.randrange(1, 6))
        out[j], out[k] = out[k], out[j]
    if out and out[0] != min(out):  # the first id defines the start of the sequence
        out.remove(min(out))
        out.insert(0, min(ids_))
    return out


def test_seeded_random_streams() -> None:
    rng = random.Random(20261126)
    for _ in range(300):
        check_stream(random_arrivals(rng, rng.randrange(2, 300)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=120))
def test_property_any_arrival_order(raw: list[int]) -> None:
    arrivals = [min(raw), *raw]  # start at the lowest id, then anything
    check_stream(arrivals)


def test_two_redundant_connections_lossless_when_either_drops_frames() -> None:
    rng = random.Random(7)
    ids_ = list(range(500, 3_000))
    a = [i for i in ids_ if rng.random() > 0.2]
    b = [i for i in ids_ if rng.random() > 0.2 or i not in a]  # together: every id
    merged: list[Trade] = []
    ia = ib = 0
    while ia < len(a) or ib < len(b):  # interleave with random lead
        if ib >= len(b) or (ia < len(a) and rng.random() < 0.5):
            merged.append(trade(a[ia], conn=1))
            ia += 1
        else:
            merged.append(trade(b[ib], conn=2))
            ib += 1
    gate = IdGate()
    kept, feed = run(gate, merged)
    assert sorted(ids(kept)) == ids_ and len(kept) == len(ids_)
    opened = {(f.first_missing, f.last_missing) for f in feed if f.what == "gap"}
    filled = {(f.first_missing, f.last_missing) for f in feed if f.what == "gap_filled"}
    assert opened == filled  # every transient gap was retracted


def test_backfilled_page_through_the_gate_skips_ids_a_live_frame_delivered() -> None:
    """A redundant connection's late id and the REST page for the same gap: stored once."""
    gate = IdGate()
    out: list[Any] = []
    gate.filter([trade(i) for i in (1, 2, 3, 4, 11)], out)  # gap 5..10 reported
    assert [(e.what, e.first_missing, e.last_missing) for e in out
            if type(e) is LedgerEntry] == [("gap", 5, 10)]
    late: list[Any] = []
    gate.filter([trade(7, conn=2)], late)  # the other connection's copy, late
    assert [e.trade_id for e in late] == [7]
    page = [factories.trade(i, backfilled=True) for i in range(5, 11)]
    passed: list[Any] = []
    gate.filter(page, passed)
    assert [e.trade_id for e in passed if type(e) is Trade] == [5, 6, 8, 9, 10]
    filled = [e for e in passed if type(e) is LedgerEntry]
    assert [(e.what, e.first_missing, e.last_missing, e.detail) for e in filled] == \
        [("gap_filled", 5, 10, "filled by backfilled ids")]
    assert gate.open_gaps(Trade, "BTCUSDT") == []


# -- every field of the ledger rows, counters, and the control API ------------------------

def gap_row(what: str, stream: str, first: int, last: int, start_ns: int, recv_ns: int,
            conn: int, detail: str) -> LedgerEntry:
    """A gap / gap_filled row as the ledger must receive it (built here, not by the gate)."""
    return LedgerEntry(what=what, stream=stream, symbol="BTCUSDT", first_missing=first,
                       last_good=first - 1, last_missing=last, start_ns=start_ns,
                       end_ns=recv_ns, recv_ns=recv_ns, conn=conn, detail=detail)


def test_gap_and_gap_filled_rows_carry_every_field() -> None:
    """start_ns is the receive time of the last id before the gap (here the key's first
    event); the filled row keeps it and is stamped by the event that completed the fill."""
    gate = IdGate()
    _, feed = run(gate, [trade(1, ns=10), trade(5, conn=2, ns=50)])
    assert feed == [gap_row("gap", "btcusdt@trade", 2, 4, 10, 50, 2, "3 ids missing")]
    _, feed = run(gate, [trade(3, conn=3, ns=60), trade(2, conn=3, ns=70)])
    assert feed == []  # 4 still missing
    _, feed = run(gate, [trade(4, conn=4, ns=80)])
    assert feed == [gap_row("gap_filled", "btcusdt@trade", 2, 4, 10, 80, 4,
                            "filled by late ids")]
    assert (gate.gaps, gate.gaps_filled, gate.late, gate.duplicates) == (1, 1, 3, 0)


def test_gap_detail_counts_the_missing_ids() -> None:
    gate = IdGate()
    _, feed = run(gate, [trade(1), trade(3), trade(6)])
    assert [f.detail for f in feed] == ["1 id missing", "2 ids missing"]


def test_agg_trades_dedup_gap_and_fill() -> None:
    gate = IdGate()
    events = [agg(1), agg(2), agg(2, conn=2), agg(3), agg(6, conn=2), agg(3), agg(4),
              agg(5, conn=2)]
    kept, feed = run(gate, events)
    assert kept == [events[i] for i in (0, 1, 3, 4, 6, 7)]  # the very objects, in order
    assert feed == [
        gap_row("gap", "btcusdt@aggTrade", 4, 5, 3, 6, 2, "2 ids missing"),
        gap_row("gap_filled", "btcusdt@aggTrade", 4, 5, 3, 5, 2, "filled by late ids")]
    assert (gate.duplicates, gate.late, gate.overlaps, gate.gaps) == (2, 2, 0, 1)
    assert gate.last_id(AggTrade, "BTCUSDT") == 6


def test_depth_gap_after_contiguous_diffs_starts_at_the_last_diff() -> None:
    gate = IdGate()
    kept, feed = run(gate, [diff(100, 110), diff(111, 120), diff(130, 140, conn=2)])
    assert len(kept) == 3 and gate.overlaps == 0
    assert feed == [gap_row("gap", "btcusdt@depth@100ms", 121, 129, 120, 140, 2,
                            "9 ids missing")]


def test_a_diff_straddling_the_hwm_also_fills_open_gaps() -> None:
    gate = IdGate()
    _, feed = run(gate, [diff(100, 110), diff(120, 130)])  # gap 111..119, start_ns 110
    assert [f.what for f in feed] == ["gap"]
    kept, feed = run(gate, [diff(115, 135, conn=2)])  # 115..119 late, 131..135 new
    assert len(kept) == 1 and feed == [] and gate.overlaps == 1
    assert gate.open_gaps(DepthUpdate, "BTCUSDT") == [(111, 119)]  # 111..114 missing
    kept, feed = run(gate, [diff(111, 140, conn=3)])  # completes the gap, straddles again
    assert len(kept) == 1 and gate.overlaps == 2
    assert feed == [gap_row("gap_filled", "btcusdt@depth@100ms", 111, 119, 110, 140, 3,
                            "filled by late ids")]
    assert gate.open_gaps(DepthUpdate, "BTCUSDT") == []
    assert gate.last_id(DepthUpdate, "BTCUSDT") == 140 and gate.late == 0


def test_dedup_only_counters_and_the_owner_repeating_after_an_advance() -> None:
    gate = IdGate()
    kept, _ = run(gate, [book(10), book(15), book(15), book(12), book(12, conn=2),
                         book(15, conn=2), book(11), book(16, conn=2), book(16, conn=2)])
    # the owner's repeat and reorders pass, another connection's copies do not
    assert [(e.update_id, e.conn) for e in kept] == [
        (10, 1), (15, 1), (15, 1), (12, 1), (11, 1), (16, 2), (16, 2)]
    assert (gate.late, gate.duplicates) == (2, 2)  # an equal repeat is not late
    assert gate.last_id(BookTicker, "BTCUSDT") == 16


def test_seed_sets_the_start_of_the_first_gap() -> None:
    gate = IdGate()
    gate.seed(Trade, "BTCUSDT", 100, recv_ns=5)
    gate.seed(Trade, "BTCUSDT", 100, recv_ns=9)  # not an advance: the time stays
    _, feed = run(gate, [trade(105, ns=500)])
    assert feed == [gap_row("gap", "btcusdt@trade", 101, 104, 5, 500, 1, "4 ids missing")]
    gate = IdGate()
    gate.seed(Trade, "BTCUSDT", 100)  # no receive time known: the window starts at 0
    _, feed = run(gate, [trade(102, ns=500)])
    assert [(f.first_missing, f.start_ns) for f in feed] == [(101, 0)]


def test_seed_advances_an_existing_key() -> None:
    gate = IdGate()
    gate.seed(Trade, "BTCUSDT", 100, recv_ns=5)
    gate.seed(Trade, "BTCUSDT", 200, recv_ns=7)
    assert gate.last_id(Trade, "BTCUSDT") == 200
    kept, feed = run(gate, [trade(150), trade(203, ns=300)])
    assert ids(kept) == [203]
    assert [(f.first_missing, f.last_missing, f.start_ns) for f in feed] == [(201, 202, 7)]


def test_seed_of_a_dedup_only_key_never_moves_it_back() -> None:
    gate = IdGate()
    gate.seed(BookTicker, "BTCUSDT", 50)
    gate.seed(BookTicker, "BTCUSDT", 40)
    assert gate.last_id(BookTicker, "BTCUSDT") == 50
    kept, _ = run(gate, [book(45), book(50), book(51)])
    assert [e.update_id for e in kept] == [51]


def test_seeded_value_is_adopted_by_the_first_connection_to_repeat_it() -> None:
    """A recorded value has no live owner: its first live copy is a duplicate, but that
    connection then owns the key and its periodic repeats pass."""
    gate = IdGate()
    gate.seed(PartialDepth, "BTCUSDT", 8)
    kept, _ = run(gate, [partial(8, conn=1), partial(8, conn=1), partial(8, conn=2)])
    assert [(e.last_update_id, e.conn) for e in kept] == [(8, 1)]
    assert gate.duplicates == 2


def test_seed_of_the_current_value_keeps_its_live_owner() -> None:
    gate = IdGate()
    run(gate, [book(50)])
    gate.seed(BookTicker, "BTCUSDT", 50)
    kept, _ = run(gate, [book(50)])  # the owner's repeat still passes
    assert [(e.update_id, e.conn) for e in kept] == [(50, 1)]


def test_last_id_and_open_gaps_of_unknown_keys() -> None:
    gate = IdGate()
    run(gate, [trade(7), book(3), partial(4), kline(0, 1, False)])
    assert gate.last_id(Trade, "BTCUSDT") == 7
    assert gate.last_id(BookTicker, "BTCUSDT") == 3
    assert gate.last_id(PartialDepth, "BTCUSDT") == 4
    assert gate.last_id(Trade, "ETHUSDT") is None
    assert gate.last_id(BookTicker, "ETHUSDT") is None
    assert gate.last_id(Kline, "BTCUSDT") is None  # no single id
    assert gate.last_id(MiniTicker, "BTCUSDT") is None
    assert gate.open_gaps(Trade, "ETHUSDT") == []
    assert gate.open_gaps(BookTicker, "BTCUSDT") == []
    assert gate.open_gaps(Kline, "BTCUSDT") == []


def test_a_gap_fragmented_past_max_holes_is_forgotten() -> None:
    """Isolated late ids split a gap; at MAX_HOLES holes it is still fillable, one more
    and it is forgotten (its remaining ids are then duplicates)."""
    gate = IdGate(max_open_gaps=1)
    run(gate, [trade(0), trade(2), trade(2000)])  # gap 1..1 evicted by gap 3..1999
    assert gate.gaps_forgotten == 1 and gate.open_gaps(Trade, "BTCUSDT") == [(3, 1999)]
    # ids 4, 6, ..., 4 + 2 * (MAX_HOLES - 2): MAX_HOLES - 1 splits -> MAX_HOLES holes
    splits = [4 + 2 * k for k in range(MAX_HOLES - 1)]
    kept, _ = run(gate, [trade(i) for i in splits])
    assert len(kept) == MAX_HOLES - 1
    assert gate.open_gaps(Trade, "BTCUSDT") == [(3, 1999)] and gate.gaps_forgotten == 1
    kept, feed = run(gate, [trade(splits[-1] + 2)])  # one hole more
    assert ids(kept) == [splits[-1] + 2] and feed == []
    assert gate.open_gaps(Trade, "BTCUSDT") == [] and gate.gaps_forgotten == 2
    kept, _ = run(gate, [trade(3)])  # was fillable, now a duplicate
    assert kept == [] and gate.gaps_filled == 0
