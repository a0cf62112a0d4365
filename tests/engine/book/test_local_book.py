"""LocalBook: Binance's procedure, crossed/beyond-depth handling, views, real data, properties."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.binance.rest_rows import decode_depth
from engine.book.local_book import BookState, LocalBook, Reason
from engine.events import BookTicker, DepthUpdate, OrderBookSnapshot, PartialDepth
from engine.exchange.testing import BookRebuilder
from engine.feed.decode import FrameDecoder

Lv = list[tuple[float, float]]


def diff(first: int, last: int, bids: Lv | None = None, asks: Lv | None = None) -> DepthUpdate:
    return DepthUpdate(event_time=0, symbol="X", first_update_id=first, final_update_id=last,
                       bids=list(bids or []), asks=list(asks or []))


def snap(last: int, bids: Lv, asks: Lv, limit: int = 5000) -> OrderBookSnapshot:
    return OrderBookSnapshot(last_update_id=last, bids=list(bids), asks=list(asks), symbol="X",
                             limit=limit)


BIDS = [(100.0, 1.0), (99.0, 2.0), (98.0, 3.0)]
ASKS = [(101.0, 1.5), (102.0, 2.5), (103.0, 3.5)]


# -- the procedure --------------------------------------------------------------------------


def test_bridging_diff_before_snapshot_is_kept_and_stale_ones_dropped() -> None:
    book = LocalBook("X")
    book.on_diff(diff(5, 8, [(100.0, 9.0)]))  # u <= lastUpdateId: dropped at sync
    book.on_diff(diff(9, 12, [(99.0, 0.0)], [(101.0, 7.0)]))  # bridges 10 (9 <= 11 <= 12)
    assert book.needs_snapshot and not book.bids
    assert book.on_snapshot(snap(10, BIDS, ASKS))
    assert book.synced and book.update_id == 12 and book.bridged_from_buffer
    assert book.levels() == ({100.0: 1.0, 98.0: 3.0}, {101.0: 7.0, 102.0: 2.5, 103.0: 3.5})
    book.on_diff(diff(13, 13, [(97.0, 1.0)]))
    assert book.update_id == 13 and book.bids[97.0] == 1.0


def test_snapshot_before_bridging_diff_and_exactly_contiguous_case() -> None:
    book = LocalBook("X")
    book.on_diff(diff(3, 4))
    assert book.on_snapshot(snap(10, BIDS, ASKS))  # newer than the buffer: all dropped
    assert not book.bridged_from_buffer and book.update_id == 10
    book.on_diff(diff(9, 10, [(100.0, 5.0)]))  # stale (u <= id)
    assert book.stale == 1 and book.bids[100.0] == 1.0
    book.on_diff(diff(11, 12, [(100.0, 5.0)]))  # U == lastUpdateId + 1 bridges
    assert book.bids[100.0] == 5.0 and book.gaps == 0


def test_snapshot_older_than_buffer_is_refused_then_a_newer_one_bridges() -> None:
    book = LocalBook("X")
    book.on_diff(diff(20, 25, [(100.0, 4.0)]))
    assert not book.on_snapshot(snap(10, BIDS, ASKS))  # 10 + 1 < 20: cannot bridge
    assert book.stale_snapshots == 1 and book.needs_snapshot and not book.bids
    assert book.on_snapshot(snap(19, BIDS, ASKS))  # 19 + 1 == 20: bridges exactly
    assert book.update_id == 25 and book.bids[100.0] == 4.0


def test_gap_drops_the_book_and_restarts_buffering_from_the_gapped_diff() -> None:
    book = LocalBook("X")
    book.on_diff(diff(1, 1))
    assert book.on_snapshot(snap(5, BIDS, ASKS))
    book.on_diff(diff(6, 7, [(100.0, 2.0)]))
    book.on_diff(diff(9, 9, [(100.0, 3.0)]))  # 8 missing
    assert (book.gaps, book.resyncs, book.state) == (1, 1, BookState.BUFFERING)
    assert book.resync_reason == Reason.GAP and book.lost_update_id == 7
    assert not book.bids and not book.asks and book.best_bid() is None  # never stale levels
    assert [d.first_update_id for d in book.buffer] == [9]
    assert book.on_snapshot(snap(9, BIDS, ASKS))
    assert book.synced and book.update_id == 9


def test_gap_while_buffering_discards_the_unbridgeable_buffer() -> None:
    book = LocalBook("X")
    book.on_diff(diff(1, 2))
    book.on_diff(diff(2, 2))  # duplicate while buffering
    book.on_diff(diff(5, 6))
    assert [d.first_update_id for d in book.buffer] == [5] and book.gaps == 1
    assert not book.on_snapshot(snap(2, BIDS, ASKS))


def test_buffer_is_bounded() -> None:
    book = LocalBook("X", max_buffer=3)
    for i in range(1, 6):
        book.on_diff(diff(i, i))
    assert [d.first_update_id for d in book.buffer] == [3, 4, 5] and book.buffer_overflows == 2


# -- never silently wrong -------------------------------------------------------------------


def test_crossed_book_is_counted_and_resynced() -> None:
    book = LocalBook("X")
    book.on_diff(diff(1, 1))
    assert book.on_snapshot(snap(1, BIDS, ASKS))
    assert not book.on_diff(diff(2, 2, [(102.5, 1.0)], [(101.0, 0.0)]))  # bid 102.5 >= ask 102
    assert book.crossed == 1 and book.resync_reason == Reason.CROSSED and book.needs_snapshot
    assert not book.bids and math.isnan(book.mid())
    # touching (bid == ask) is crossed too
    book2 = LocalBook("X")
    assert book2.on_snapshot(snap(1, BIDS, ASKS))
    book2.on_diff(diff(2, 2, [(101.0, 1.0)]))
    assert book2.crossed == 1


def test_levels_beyond_a_truncated_snapshot_are_pruned_and_views_stay_verified() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))  # 3 levels of limit 3: truncated
    assert (book.bid_floor, book.ask_ceiling) == (98.0, 103.0)
    book.on_diff(diff(2, 2, [(90.0, 5.0), (98.5, 1.0), (98.0, 0.0)], [(110.0, 1.0)]))
    assert book.pruned == 2  # 90 and 110 are outside what the snapshot vouched for
    assert book.levels() == ({100.0: 1.0, 99.0: 2.0, 98.5: 1.0}, dict(ASKS))
    assert book.top(10)[0] == [(100.0, 1.0), (99.0, 2.0), (98.5, 1.0)]
    book.on_diff(diff(3, 3, [(90.0, 0.0)]))  # deleting an unknown deep level is normal
    assert book.synced and book.pruned == 2


def test_a_thin_snapshot_is_complete_so_nothing_is_pruned() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=100))  # fewer levels than the limit
    assert (book.bid_floor, book.ask_ceiling) == (-math.inf, math.inf)
    book.on_diff(diff(2, 2, [(50.0, 1.0)], [(500.0, 1.0)]))
    assert book.pruned == 0 and 50.0 in book.bids and 500.0 in book.asks


def test_a_truncated_side_that_runs_out_of_verified_levels_resyncs() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))
    book.on_diff(diff(2, 2, [(100.0, 0.0), (99.0, 0.0), (98.0, 0.0)]))
    assert book.exhausted == 1 and book.resync_reason == Reason.DEPTH_EXHAUSTED
    assert book.needs_snapshot
    # or, told not to, the side reads empty (not wrong) until prices are back in range
    book = LocalBook("X", resync_when_exhausted=False)
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))
    book.on_diff(diff(2, 2, [(100.0, 0.0), (99.0, 0.0), (98.0, 0.0), (97.0, 4.0)]))
    assert book.synced and book.best_bid() is None and book.depth_exhausted
    book.on_diff(diff(3, 3, [(98.5, 2.0)]))
    assert book.best_bid() == (98.5, 2.0) and not book.depth_exhausted and book.exhausted == 1


def test_views() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS))
    assert book.best_bid() == (100.0, 1.0) and book.best_ask() == (101.0, 1.5)
    assert book.mid() == 100.5 and book.spread() == 1.0
    assert book.spread_bps() == pytest.approx(1.0 / 100.5 * 1e4)
    assert book.top(2) == ([(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.5), (102.0, 2.5)])
    assert book.cumulative(3) == ([(100.0, 1.0), (99.0, 3.0), (98.0, 6.0)],
                                  [(101.0, 1.5), (102.0, 4.0), (103.0, 7.5)])
    assert book.depth(2) == (3.0, 4.0)
    assert book.imbalance(2) == pytest.approx((3.0 - 4.0) / 7.0)
    assert book.top(100) == (BIDS, ASKS)


# -- exact counters, return values and boundaries (what the keeper and the status show) -------


def test_a_fresh_book_reports_nothing_yet() -> None:
    """The keeper reads these before any sync: a non-empty reason or a count would be a lie."""
    book = LocalBook("X")
    assert (book.symbol, book.state, book.update_id, book.snapshot_id) == (
        "X", BookState.BUFFERING, 0, 0)
    assert book.depth_exhausted is False and book.bridged_from_buffer is False
    assert (book.bid_floor, book.ask_ceiling) == (-math.inf, math.inf)
    assert (book.replayed, book.resync_reason, book.lost_update_id) == ([], "", -1)
    assert (book.applied, book.stale, book.gaps, book.crossed, book.exhausted, book.pruned,
            book.syncs, book.resyncs, book.stale_snapshots, book.buffer_overflows) == (0,) * 10
    assert book.top(1) == ([], []) and book.top(5) == ([], [])


def test_on_diff_returns_true_only_when_applied_and_counters_accumulate() -> None:
    book = LocalBook("X")
    assert book.on_diff(diff(1, 1)) is False  # buffered, not applied
    assert book.on_snapshot(snap(1, BIDS, ASKS))
    assert book.on_diff(diff(2, 2, [(97.0, 1.0)])) is True
    assert book.on_diff(diff(2, 2)) is False and book.on_diff(diff(1, 2)) is False
    assert (book.stale, book.applied, book.update_id) == (2, 1, 2)
    assert book.on_diff(diff(4, 4)) is False  # 3 missing: gap
    assert book.on_snapshot(snap(4, BIDS, ASKS))
    assert book.on_diff(diff(6, 6)) is False  # 5 missing: second gap
    assert (book.gaps, book.resyncs, book.syncs, book.lost_update_id) == (2, 2, 2, 4)


def test_each_crossed_diff_is_counted() -> None:
    book = LocalBook("X")
    for i in (1, 2):
        assert book.on_snapshot(snap(10 * i, BIDS, ASKS))
        assert book.on_diff(diff(10 * i + 1, 10 * i + 1, [(101.0, 1.0)])) is False
    assert (book.crossed, book.resyncs, book.resync_reason) == (2, 2, Reason.CROSSED)


def test_while_buffering_duplicates_are_stale_and_a_one_id_hole_is_a_gap() -> None:
    book = LocalBook("X")
    book.on_diff(diff(1, 2))
    book.on_diff(diff(1, 2))  # same u as the last buffered diff
    book.on_diff(diff(2, 2))
    assert book.stale == 2 and [d.final_update_id for d in book.buffer] == [2]
    book.on_diff(diff(4, 4))  # 3 missing
    assert book.gaps == 1 and [d.first_update_id for d in book.buffer] == [4]
    book.on_diff(diff(6, 7))  # 5 missing
    assert book.gaps == 2 and [d.first_update_id for d in book.buffer] == [6]
    assert book.on_diff(diff(8, 8)) is False and len(book.buffer) == 2


def test_a_snapshot_one_id_too_old_is_refused_and_each_refusal_counted() -> None:
    book = LocalBook("X")
    book.on_diff(diff(20, 25))
    assert not book.on_snapshot(snap(18, BIDS, ASKS))  # 19 would be missing
    assert not book.on_snapshot(snap(5, BIDS, ASKS))
    assert book.stale_snapshots == 2 and book.syncs == 0 and book.needs_snapshot


def test_replayed_lists_exactly_the_bridging_diffs_and_drop_forgets_them() -> None:
    book = LocalBook("X")
    d10, d11, d12 = diff(9, 10), diff(11, 11, [(97.0, 1.0)]), diff(12, 12)
    for d in (d10, d11, d12):
        book.on_diff(d)
    assert book.on_snapshot(snap(10, BIDS, ASKS))  # d10 ends at the snapshot: not replayed
    assert book.replayed == [d11, d12] and book.bridged_from_buffer is True
    assert (book.stale, book.applied, book.syncs, book.update_id) == (0, 2, 1, 12)
    assert book.depth_exhausted is False
    book.drop(Reason.AUDIT)
    assert book.replayed == [] and book.resync_reason == "audit"
    book.on_diff(diff(13, 13))
    assert book.on_snapshot(snap(13, BIDS, ASKS))  # ends exactly at the buffered diff
    assert book.replayed == [] and book.bridged_from_buffer is False and book.stale == 0


def test_a_replay_that_crosses_rebuffers_only_the_later_diffs() -> None:
    book = LocalBook("X")
    later = [diff(13, 13, [(97.0, 1.0)]), diff(14, 14)]
    for d in [diff(11, 11), diff(12, 12, [(101.0, 1.0)]), *later]:  # 12 crosses ask 101
        book.on_diff(d)
    assert book.on_snapshot(snap(10, BIDS, ASKS)) is False
    assert (book.crossed, book.syncs, book.replayed, book.state) == (
        1, 0, [], BookState.BUFFERING)
    assert list(book.buffer) == later  # kept to bridge the next snapshot
    assert book.on_snapshot(snap(12, BIDS, ASKS))
    assert book.replayed == later and book.update_id == 14 and book.bids[97.0] == 1.0


def test_a_hand_filled_buffer_with_a_hole_or_a_duplicate_is_handled_safely() -> None:
    """``buffer`` is a public deque; the sync must not trust it to be contiguous."""
    book = LocalBook("X")
    book.buffer.extend([diff(11, 11), diff(13, 13)])  # 12 missing
    assert not book.on_snapshot(snap(11, BIDS, ASKS))
    assert (book.stale_snapshots, book.gaps, book.resyncs) == (1, 0, 0) and book.needs_snapshot
    book = LocalBook("X")
    book.buffer.extend([diff(11, 11), diff(11, 11), diff(12, 12, [(97.0, 1.0)])])
    assert book.on_snapshot(snap(10, BIDS, ASKS))  # the duplicate is stale, not a failure
    assert (book.stale, book.applied, book.update_id, book.bids[97.0]) == (1, 2, 12, 1.0)
    assert not book.buffer


def test_partial_depth_without_a_limit_is_taken_as_truncated() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(PartialDepth(last_update_id=1, bids=BIDS, asks=ASKS))
    assert (book.bid_floor, book.ask_ceiling) == (98.0, 103.0)


def test_levels_exactly_at_the_verified_boundary_are_kept() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))
    book.on_diff(diff(2, 2, [(98.0, 0.0)], [(103.0, 0.0)]))
    book.on_diff(diff(3, 3, [(98.0, 4.0), (90.0, 1.0), (91.0, 1.0)], [(103.0, 5.0)]))
    assert book.pruned == 2 and book.bids[98.0] == 4.0 and book.asks[103.0] == 5.0
    assert book.top(5) == ([(100.0, 1.0), (99.0, 2.0), (98.0, 4.0)],
                           [(101.0, 1.5), (102.0, 2.5), (103.0, 5.0)])


@pytest.mark.parametrize(("limit", "bids", "asks"), [
    (100, BIDS, ASKS),  # both sides complete
    (3, BIDS, ASKS[:2]),  # bids truncated, asks complete
    (3, BIDS[:2], ASKS),  # asks truncated, bids complete
])
def test_emptying_a_complete_side_is_fine(limit: int, bids: Lv, asks: Lv) -> None:
    """Only a truncated side that runs dry is exhausted; a complete one is just thin."""
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, bids, asks, limit=limit))
    complete_b, complete_a = len(bids) < limit, len(asks) < limit
    uid = 1
    if complete_a:
        uid += 1
        assert book.on_diff(diff(uid, uid, [], [(p, 0.0) for p, _ in asks])) is True
        assert book.top(1) == ([bids[0]], []) and book.best_ask() is None
        uid += 1
        assert book.on_diff(diff(uid, uid, [], [asks[0]])) is True
    if complete_b:
        uid += 1
        assert book.on_diff(diff(uid, uid, [(p, 0.0) for p, _ in bids])) is True
        assert book.top(1) == ([], [asks[0]]) and book.best_bid() is None
    assert book.synced and book.exhausted == 0 and book.depth_exhausted is False


def test_exhaustion_is_counted_per_episode_and_a_resyncing_book_returns_false() -> None:
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))
    assert book.on_diff(diff(2, 2, [], [(p, 0.0) for p, _ in ASKS])) is False
    assert (book.exhausted, book.resync_reason) == (1, Reason.DEPTH_EXHAUSTED)
    book = LocalBook("X", resync_when_exhausted=False)
    assert book.on_snapshot(snap(1, BIDS, ASKS, limit=3))
    dry = [(p, 0.0) for p, _ in BIDS]
    assert book.on_diff(diff(2, 2, dry)) is True and book.depth_exhausted is True
    assert book.on_diff(diff(3, 3, [], [(101.0, 2.0)])) is True  # still dry: same episode
    assert book.on_diff(diff(4, 4, [(99.0, 1.0)])) is True and book.depth_exhausted is False
    assert book.on_diff(diff(5, 5, [(99.0, 0.0)])) is True  # dry again: a second episode
    assert (book.exhausted, book.resyncs, book.synced) == (2, 0, True)


def test_stale_heap_entries_are_compacted_exactly_past_the_slack() -> None:
    """Memory stays bounded: the lazy heaps are rebuilt once they exceed 2 x live + 256
    entries, and not earlier (a rebuild costs a full pass over the side)."""
    book = LocalBook("X")
    assert book.on_snapshot(snap(0, BIDS, ASKS))

    def heaps() -> tuple[int, int]:
        return len(book._bid_heap), len(book._ask_heap)  # noqa: SLF001

    for uid in range(1, 260):  # each diff leaves one stale entry per side: 3 + 259 = 262
        book.on_diff(diff(uid, uid, [(97.0, 1.0), (97.0, 0.0)], [(104.0, 1.0), (104.0, 0.0)]))
    assert heaps() == (262, 262)  # == 2 * 3 + 256: tolerated
    book.on_diff(diff(260, 260, [(97.0, 1.0), (97.0, 0.0)], [(104.0, 1.0), (104.0, 0.0)]))
    assert heaps() == (3, 3)  # 263 > 262: rebuilt from the live levels
    assert book.top(5) == (BIDS, ASKS) and book.synced


def test_imbalance_defaults_to_the_best_ten_levels() -> None:
    bids = [(100.0 - i, 1.0) for i in range(11)]
    asks = [(101.0 + i, 1.0) for i in range(10)] + [(111.0, 100.0)]
    book = LocalBook("X")
    assert book.on_snapshot(snap(1, bids, asks))
    assert book.imbalance() == 0.0  # 10 vs 10; the 11th ask (100) is outside
    assert book.imbalance(11) == pytest.approx((11.0 - 110.0) / 121.0)


# -- the real BTCUSDT 2024 recording ----------------------------------------------------------


def test_real_recording_book_matches_independent_rebuild_and_book_ticker(
        shared_dir: Path) -> None:
    """Snapshot on line 8 after its bridging diff, then every diff; bookTicker cross-checks.

    BTC fell below the 1000-level snapshot's worst bid for a while: the book must then
    show no bid at all (not a wrong one), and be exact again once prices came back.
    """
    lines = gzip.decompress(
        (shared_dir / "realdata/hftbacktest/btcusdt_20240808.gz").read_bytes()).splitlines()
    dec = FrameDecoder()
    book = LocalBook("BTCUSDT", resync_when_exhausted=False)  # no later snapshot to use
    ref = BookRebuilder()
    checks = mismatches = unverified = 0
    ahead: dict[int, BookTicker] = {}  # bookTicker is real time, its diff comes later

    def check(bt: BookTicker) -> None:
        nonlocal checks, mismatches, unverified
        checks += 1
        want_b = (bt.bid_price, bt.bid_qty) if bt.bid_price >= book.bid_floor else None
        want_a = (bt.ask_price, bt.ask_qty) if bt.ask_price <= book.ask_ceiling else None
        unverified += want_b is None or want_a is None
        if (book.best_bid(), book.best_ask()) != (want_b, want_a):
            mismatches += 1

    for i, line in enumerate(lines, 1):
        ns, _, frame = line.partition(b" ")
        if frame.startswith(b'{"lastUpdateId"'):
            assert i == 8
            assert book.on_snapshot(decode_depth(frame, "BTCUSDT", 1000, int(ns)))
            assert ref.on_snapshot(json.loads(frame))
            assert book.bridged_from_buffer  # the bridging diff (line 6) came first
            continue
        ev = dec.decode(frame, int(ns), 1)
        if isinstance(ev, DepthUpdate):
            book.on_diff(ev)
            ref.on_diff(json.loads(frame)["data"])
            bt = ahead.pop(book.update_id, None)
            if bt is not None and book.synced:
                check(bt)  # the book has just reached the id this bookTicker showed
        elif isinstance(ev, BookTicker):
            if book.synced and ev.update_id == book.update_id:
                check(ev)
            elif ev.update_id > book.update_id:
                ahead[ev.update_id] = ev
    assert book.synced and book.gaps == 0 and book.resyncs == 0 and ref.gaps == 0
    assert book.applied == ref.applied > 3400 and book.exhausted >= 1
    assert checks > 400 and mismatches == 0 and 0 < unverified < checks // 2
    floor, ceiling = book.bid_floor, book.ask_ceiling
    want_b = {float(p): float(q) for p, q in ref.bids.items() if float(p) >= floor}
    want_a = {float(p): float(q) for p, q in ref.asks.items() if float(p) <= ceiling}
    assert book.levels() == (want_b, want_a)
    # the rebuild also holds levels beyond the 1000-level snapshot that the book refused
    outside = sum(float(p) < floor for p in ref.bids) + sum(float(p) > ceiling for p in ref.asks)
    assert outside > 0 and book.pruned >= outside


# -- property: random diff streams against a dict model ---------------------------------------

BID_PRICES = [float(p) for p in range(1, 13)]
ASK_PRICES = [float(p) for p in range(13, 25)]  # disjoint: the truth never crosses

op = st.one_of(
    st.tuples(st.just("diff"), st.integers(1, 3),
              st.lists(st.tuples(st.sampled_from(BID_PRICES), st.sampled_from([0.0, 1.0, 2.5])),
                       max_size=4),
              st.lists(st.tuples(st.sampled_from(ASK_PRICES), st.sampled_from([0.0, 1.0, 2.5])),
                       max_size=4)),
    st.tuples(st.just("lost"), st.integers(1, 3)),  # a diff the client never receives
    st.tuples(st.just("dup"), st.integers(0, 50)),  # an old diff delivered again
    st.tuples(st.just("snap"), st.integers(0, 4), st.sampled_from([3, 5000])),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=60))
def test_random_diff_streams_match_a_dict_model(ops: list[tuple]) -> None:
    truth_b: dict[float, float] = {p: 1.0 for p in BID_PRICES[4:]}
    truth_a: dict[float, float] = {p: 1.0 for p in ASK_PRICES[:8]}
    uid = 1
    states = {uid: (dict(truth_b), dict(truth_a))}  # truth after each id that ends a diff
    sent: list[DepthUpdate] = []
    book = LocalBook("X")

    def check() -> None:
        # the hot path edits dict and lazy heap apart: every live price must be in its heap
        assert set(book.bids) <= {-p for p in book._bid_heap}  # noqa: SLF001
        assert set(book.asks) <= set(book._ask_heap)  # noqa: SLF001
        if book.bids:
            assert book.best_bid()[0] == max(book.bids)  # type: ignore[index]
            n = min(5, len(book.bids))
            assert [p for p, _ in book.top(n)[0]] == sorted(book.bids, reverse=True)[:n]
        if book.asks:
            assert book.best_ask()[0] == min(book.asks)  # type: ignore[index]
        if not book.synced:
            assert not book.bids and not book.asks
            return
        want_b, want_a = states[book.update_id]
        assert book.levels() == (
            {p: q for p, q in want_b.items() if p >= book.bid_floor},
            {p: q for p, q in want_a.items() if p <= book.ask_ceiling})
        if book.bids and book.asks:
            assert book.best_bid()[0] < book.best_ask()[0]  # type: ignore[index]

    for o in ops:
        if o[0] in ("diff", "lost"):
            n = o[1]
            bids, asks = (o[2], o[3]) if o[0] == "diff" else ([(BID_PRICES[0], 1.0)], [])
            for p, q in bids:
                truth_b.pop(p, None) if q == 0 else truth_b.__setitem__(p, q)
            for p, q in asks:
                truth_a.pop(p, None) if q == 0 else truth_a.__setitem__(p, q)
            d = diff(uid + 1, uid + n, bids, asks)
            uid += n
            states[uid] = (dict(truth_b), dict(truth_a))
            sent.append(d)
            if o[0] == "diff":
                book.on_diff(d)
        elif o[0] == "dup" and sent:
            book.on_diff(sent[o[1] % len(sent)])
        elif o[0] == "snap" and book.needs_snapshot:
            ids = sorted(states)
            at = ids[max(0, len(ids) - 1 - o[1])]  # a snapshot a few diffs old, or current
            sb = sorted(states[at][0].items(), reverse=True)[:o[2]]
            sa = sorted(states[at][1].items())[:o[2]]
            ok = book.on_snapshot(snap(at, sb, sa, limit=o[2]))
            first_u = book.buffer[0].first_update_id if book.buffer else None
            assert ok or first_u is None or at + 1 < first_u or not book.synced
        check()
