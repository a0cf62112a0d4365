"""The connection slot's timing rules as plain numbers: ping, stale, rollover, waits."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.feed import watch


def test_redundant_slots_are_staggered() -> None:
    assert watch.staggered_age_s(84_600, 0) == 84_600
    assert watch.staggered_age_s(84_600, 1) == 84_600 * 0.95
    assert (watch.daily_offset_s(0), watch.daily_offset_s(1)) == (0.0, 30.0)


def test_tick_is_fast_enough_for_both_rules_and_never_zero() -> None:
    assert watch.tick_s(5, 15) == 1.25
    assert watch.tick_s(0.04, 0.06) == watch.MIN_TICK_S


def test_stale_and_ping() -> None:
    assert not watch.is_stale(15.0, 15.0) and watch.is_stale(15.01, 15.0)
    assert watch.should_ping(silent_s=6, since_ping_s=6, idle_ping_after_s=5, can_send=True)
    assert not watch.should_ping(6, 6, 5, can_send=False)  # the pace says wait
    assert not watch.should_ping(6, 1, 5, True)  # pinged a second ago
    assert not watch.should_ping(4, 60, 5, True)  # not silent long enough


def test_rollover_reasons_in_order_of_urgency() -> None:
    base = dict(after_s=100.0, wall_s=1_000.0, planned_at=2_000.0, rollover_at="12:00")
    assert watch.rollover_reason(age_s=10, shutdown_seen=False, **base) == ""
    assert watch.rollover_reason(age_s=100, shutdown_seen=False, **base) == \
        "connection age 100s"
    assert watch.rollover_reason(age_s=100, shutdown_seen=True, **base) == "serverShutdown"
    daily = {**base, "wall_s": 2_000.0}
    assert watch.rollover_reason(age_s=10, shutdown_seen=False, **daily) == \
        "daily rollover at 12:00 UTC"


def test_seconds_to_rollover_and_wait_timeout() -> None:
    assert watch.seconds_to_rollover(age_s=40, after_s=100, wall_s=0, planned_at=0) == 60
    assert watch.seconds_to_rollover(age_s=40, after_s=100, wall_s=990, planned_at=1000) == 10
    assert watch.seconds_to_rollover(age_s=140, after_s=100, wall_s=0, planned_at=0) == 0
    args = dict(tick=1.0, age_s=99.5, after_s=100.0, wall_s=0.0, planned_at=0.0)
    assert watch.wait_timeout(retry_in_s=0, **args) == 0.5  # the rollover is due first
    assert watch.wait_timeout(retry_in_s=0.2, **args) == 0.2  # a failed one backs off
    assert watch.wait_timeout(retry_in_s=0, **{**args, "age_s": 1.0}) == 1.0  # one tick
    assert watch.wait_timeout(retry_in_s=0, **{**args, "age_s": 200.0}) == 0.001


def test_next_daily_rollover() -> None:
    noon = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
    assert watch.next_daily("12:30", noon) == noon + 1800
    assert watch.next_daily("11:00", noon) == noon + 23 * 3600  # tomorrow
    assert watch.next_daily("12:30", noon, 30) == noon + 1830
    assert watch.next_daily("", noon) == 0.0 and watch.next_daily("25:00", noon) == 0.0
