"""A reduced fault matrix (bench/faults.py, ``make faults``) inside ``make test``.

Each row runs a real ``binance-live --no-ui`` recorder against the local exchange, applies
one fault, stops it with SIGINT and compares what the exchange produced and sent with the
recording and its gap ledger. What is asserted is what the engine guarantees *today*:

* the row itself completed: no fault or drain step timed out inside bench/faults.py,
  and every compared kind is in the result with something sent and recorded;
* the process survives the fault and exits 0 after SIGINT;
* everything the exchange wrote to a socket is recorded (except frames lost in flight
  with a TCP abort, which must then be in the ledger), and nothing is recorded twice;
  bookTicker and partial depth frames are compared on identity (``u`` /
  ``lastUpdateId``) over every connection: during a rollover both connections deliver,
  and each distinct frame must be recorded exactly once;
* no trade or aggTrade id is lost: what the socket missed is backfilled from REST;
* every id range that is missing (diff depth, which has no REST history) has a gap row
  naming its first missing id (``first_missing``, ``last_good`` = first - 1), and no gap
  row is false (each is either still open over a lost range or closed by a backfill);
* REST weight never went over the exchange's limit and no request was sent inside a
  429's Retry-After.

Diff-depth ids produced while the socket is down stay lost (and ledgered; the book
resyncs from a snapshot); see the README's Reliability section.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import ROOT

BENCH = ROOT / "bench" / "faults.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_faults", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


bench = load_bench()

ROWS = {
    "stall": bench.Row("stall", bench.stall),
    "malformed": bench.Row("10k malformed frames", bench.malformed(10_000)),
    "reconnect": bench.Row("reconnect loop 10s", bench.reconnect_loop(10.0, every=2.5)),
    "429": bench.Row("429 storm", bench.rest_storm(429, 4, 1.0)),
    "rollover": bench.Row("24h rollover x2", bench.rollover(3.0, 2),
                          extra=("--set", "connection.rollover_after_s=2")),
    "kill9": bench.Row("kill -9 + restart", bench.kill9_restart),
}
ID_KINDS = ("trade", "aggTrade", "depthUpdate")
FRAME_KINDS = ("bookTicker", "depthPartial")


def check_complete(r: dict[str, Any]) -> None:
    """The row ran to the end: a fault or drain step that timed out inside bench/faults.py
    is stored as ``error`` and the row is analysed anyway, on partial results."""
    assert not r.get("error"), (r.get("error"), r.get("error_output", "")[-1500:],
                                r.get("error_conns"))
    assert "kinds" in r, r
    assert set(r["kinds"]) == {*ID_KINDS, *FRAME_KINDS}, sorted(r["kinds"])
    for kind in ID_KINDS:
        k = r["kinds"][kind]
        assert "error" not in k, (kind, k)
        assert k["produced"] > 0 and k["sent_frames"] > 0 and k["recorded_rows"] > 0, (kind, k)
    for kind in FRAME_KINDS:
        k = r["kinds"][kind]
        assert k["distinct_sent"] > 0 and k["recorded_rows"] > 0, (kind, k)


def check_guarantees(r: dict[str, Any], abort_allowed: bool) -> None:
    """`abort_allowed`: the row drops TCP connections (or kills the recorder), so frames
    written to a socket may be gone; each such loss must then be in the ledger."""
    check_complete(r)
    assert r["info"]["alive_before_stop"], r
    assert r["exit"] == 0, r["output_tail"]
    for kind in ID_KINDS:
        k = r["kinds"][kind]
        assert k["duplicates"] == 0, (kind, k)
        if kind != "depthUpdate":
            assert k["lost_ids"] == 0, (kind, k)
        assert k["recorded_not_sent"] == 0, (kind, k)
        # every missing id range is in the ledger, exactly, and no gap row is invented
        assert k["unledgered_ranges"] == [], (kind, k)
        assert k["false_gap_rows"] == 0, (kind, k)
        assert k["ranges_ledgered_exactly"] == k["lost_ranges"], (kind, k)
        if not abort_allowed:  # all that was written to the socket was recorded
            assert k["in_flight_ids"] == 0, (kind, k)
        else:  # lost in flight, backfilled or not: inside a gap row's range
            assert k["in_flight_unledgered"] == [], (kind, k)
    for kind in FRAME_KINDS:
        k = r["kinds"][kind]
        assert k["recorded_not_sent"] == 0, f"{kind}: recorded, never sent: {k}"
        assert k["recorded_twice"] == 0, f"{kind}: one frame recorded twice: {k}"
        if not abort_allowed:  # every distinct frame sent on any connection is recorded
            assert k["sent_not_recorded"] == 0, \
                f"{kind}: sent, never recorded: {k['missing_sample']} ({k})"
        else:  # each frame lost falls inside an outage the ledger records
            assert k["unledgered_missing"] == 0, \
                f"{kind}: lost outside any ledgered outage: {k['unledgered_sample']} ({k})"
    w = r["weight"]
    assert w["rejected"] == 0 and w["peak_accepted"] <= w["limit"], w
    assert w["requests_inside_retry_after"] == 0, w


@pytest.mark.timeout(60)
async def test_stall_is_detected_replaced_and_every_loss_ledgered() -> None:
    r = await bench.run_row(ROWS["stall"])
    check_guarantees(r, abort_allowed=False)
    assert r["reconnects"] == 1 and r["ledger_counts"].get("stale") == 1, r["ledger_counts"]
    assert 1500 < r["detect_ms"]["max"] < 6000, r["detect_ms"]  # stale_after_s = 2
    assert r["recover_ms"] is not None


@pytest.mark.timeout(60)
async def test_10k_malformed_frames_are_counted_and_nothing_is_lost() -> None:
    r = await bench.run_row(ROWS["malformed"])
    check_guarantees(r, abort_allowed=False)
    assert r["bad_frames"] == 10_000
    assert r["reconnects"] == 0
    assert all(r["kinds"][k]["lost_ids"] == 0 for k in ID_KINDS), r["kinds"]


@pytest.mark.timeout(60)
async def test_reconnect_loop_losses_are_exactly_the_ledgered_gaps() -> None:
    r = await bench.run_row(ROWS["reconnect"])
    check_guarantees(r, abort_allowed=True)  # half of the cycles are TCP aborts (1006)
    assert r["faults"] == 4 and r["reconnects"] == 4, (r["faults"], r["reconnects"])
    assert r["weight"]["injected"] == {"drop": 2, "close_1008": 2}
    assert r["recover_ms"] is not None and r["recover_ms"]["n"] == 4, r["recover_ms"]


@pytest.mark.timeout(60)
async def test_429_storm_pauses_rest_and_the_book_recovers_within_budget() -> None:
    r = await bench.run_row(ROWS["429"])
    check_guarantees(r, abort_allowed=False)
    assert r["weight"]["injected"] == {"rest_429": 4}
    assert r["reconnects"] == 0
    # the skipped diff id is the only loss, and it is ledgered
    assert r["kinds"]["depthUpdate"]["lost_ids"] == 1
    assert r["ledger_counts"].get("resync") == 1
    assert r["info"]["storm_to_resync_ms"] >= 3000  # four Retry-After: 1 pauses honoured


@pytest.mark.timeout(60)
async def test_rollover_before_the_24h_cut_loses_nothing_at_all() -> None:
    r = await bench.run_row(ROWS["rollover"])
    # no connection is aborted: nothing written to a socket may be missing, and the
    # frames both connections deliver during the overlap are recorded once
    check_guarantees(r, abort_allowed=False)
    for kind in FRAME_KINDS:  # the overlaps really happened: one frame, several sockets
        k = r["kinds"][kind]
        assert k["connections"] >= 3 and k["sent_frames"] > k["distinct_sent"], (kind, k)
        assert k["distinct_recorded"] == k["distinct_sent"], (kind, k)
    assert all(r["kinds"][k]["lost_ids"] == 0 for k in ID_KINDS), r["kinds"]
    assert all(r["kinds"][k]["gap_rows"] == 0 for k in ID_KINDS), r["kinds"]
    assert r["ledger_counts"].get("rollover", 0) >= 2, r["ledger_counts"]
    assert r["ledger_counts"].get("disconnect", 0) <= 1, r["ledger_counts"]  # the SIGINT


@pytest.mark.timeout(90)
async def test_kill_9_restart_backfills_the_downtime_and_ledgers_the_depth_gap() -> None:
    r = await bench.run_row(ROWS["kill9"])
    check_guarantees(r, abort_allowed=True)  # rows in memory at the kill were never written
    assert r["kinds"]["trade"]["backfilled"] > 0 and r["kinds"]["aggTrade"]["backfilled"] > 0
    assert r["kinds"]["depthUpdate"]["lost_ranges"] == 1  # no REST history: ledgered
