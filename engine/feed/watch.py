"""When to ping, when a connection is stale, when to roll it over: pure decisions.

The connection slot (:mod:`engine.feed.link`) asks these functions with the numbers it
has (ages, silences, clocks) and acts on the answer; nothing here sleeps, reads a clock
or touches a socket, so every rule is tested with plain numbers.

* **ping**: a connection silent for ``idle_ping_after_s`` is pinged (at most once per
  that period, and only when the outgoing message pace allows it), so a quiet but
  healthy connection answers with a pong;
* **stale**: silent (not even a pong) for ``stale_after_s``: it is dead, replace it;
* **rollover**: make-before-break replacement before Binance's 24 h cut: at
  ``rollover_after_s`` of age, at the daily ``rollover_at`` (HH:MM UTC), or at once
  after ``serverShutdown``. Redundant slots are staggered (:func:`staggered_age_s`,
  :func:`daily_offset_s`) so two copies of a shard never switch at the same moment.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.config import parse_hhmm

AGE_STAGGER = 0.05  # slot n rolls over at (1 - 0.05 n) x rollover_after_s
DAILY_STAGGER_S = 30.0  # ... and n x 30 s after rollover_at
MIN_TICK_S = 0.02


def staggered_age_s(rollover_after_s: float, slot: int) -> float:
    """The connection age at which slot ``slot`` rolls over."""
    return rollover_after_s * (1.0 - AGE_STAGGER * slot)


def daily_offset_s(slot: int) -> float:
    return slot * DAILY_STAGGER_S


def tick_s(idle_ping_after_s: float, stale_after_s: float) -> float:
    """How often a served connection is looked at (fast enough for both rules)."""
    return max(MIN_TICK_S, min(idle_ping_after_s, stale_after_s) / 4)


def is_stale(silent_s: float, stale_after_s: float) -> bool:
    return silent_s > stale_after_s


def should_ping(silent_s: float, since_ping_s: float, idle_ping_after_s: float,
                can_send: bool) -> bool:
    """Ping a connection silent this long, once per idle period, if the pace allows."""
    return silent_s > idle_ping_after_s and since_ping_s > idle_ping_after_s and can_send


def rollover_reason(*, age_s: float, after_s: float, wall_s: float, planned_at: float,
                    rollover_at: str, shutdown_seen: bool) -> str:
    """Why the connection should be replaced now ("" = not yet).

    ``planned_at``: epoch seconds of the next daily rollover (0 = none).
    """
    if shutdown_seen:
        return "serverShutdown"
    if age_s >= after_s:
        return f"connection age {age_s:.0f}s"
    if planned_at and wall_s >= planned_at:
        return f"daily rollover at {rollover_at} UTC"
    return ""


def seconds_to_rollover(*, age_s: float, after_s: float, wall_s: float,
                        planned_at: float) -> float:
    """Until the next planned rollover (0 when due)."""
    due = max(0.0, after_s - age_s)
    if planned_at:
        due = min(due, max(0.0, planned_at - wall_s))
    return due


def wait_timeout(*, tick: float, age_s: float, after_s: float, wall_s: float,
                 planned_at: float, retry_in_s: float) -> float:
    """How long the slot may sleep before something is due (a tick at most).

    ``retry_in_s`` > 0: a failed replacement backs off this long first.
    """
    if retry_in_s > 0:
        due = retry_in_s
    else:
        due = after_s - age_s
        if planned_at:
            due = min(due, planned_at - wall_s)
    return max(0.001, min(tick, due))


def next_daily(hhmm: str, now: float, offset_s: float = 0.0) -> float:
    """Epoch seconds of the next ``HH:MM`` UTC (+ ``offset_s``) after ``now``; 0: off."""
    parsed = parse_hhmm(hhmm) if hhmm else None
    if parsed is None:
        return 0.0
    today = datetime.fromtimestamp(now, UTC).replace(hour=parsed[0], minute=parsed[1],
                                                     second=0, microsecond=0)
    at = today.timestamp() + offset_s
    return at if at > now else (today + timedelta(days=1)).timestamp() + offset_s
