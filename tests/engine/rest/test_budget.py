"""The one REST weight budget: its window arithmetic on a manual clock (exact, instant),
then against the local exchange's real limiter over loopback.

Window edges are never reached by sleeping: the budget reads an ``ExchangeClock`` over a
``ManualClock``, and in the loopback tests the exchange's limiter reads the same manual
clock, so both sides see the window turn exactly when the test moves the clock.
"""

from __future__ import annotations

import asyncio
import sys
import time
from types import SimpleNamespace

import pytest
from pytest import MonkeyPatch

import engine.rest.budget as budget_module
from engine.binance.weights import depth_weight, request_weight
from engine.clock import ExchangeClock, ManualClock
from engine.engine import Engine
from engine.errors import RestRejected, RestUnavailable, UnknownSymbols
from engine.exchange import ExchangeConfig, LocalExchange
from engine.rest.budget import SAFETY, BudgetStatus, WeightBudget
from engine.rest.client import Priority, RestClient
from engine.rest.exchange_info import fetch_exchange_info
from tests.helpers import ROOT, settings_for, wait_until


def test_weights_are_binance_current_ones() -> None:
    assert [depth_weight(n) for n in (5, 100, 101, 500, 501, 1000, 1001, 5000, 9999)] == [
        5, 5, 25, 25, 50, 50, 250, 250, 250]
    assert request_weight("/api/v3/exchangeInfo") == 20
    assert request_weight("/api/v3/aggTrades", {"symbol": "X"}) == 4
    assert request_weight("/api/v3/klines", {"symbol": "X"}) == 2
    assert request_weight("/api/v3/historicalTrades", {"symbol": "X"}) == 25
    assert request_weight("/api/v3/depth", {"symbol": "X"}) == 5  # default limit 100


MINUTE = 60.0
T0_NS = 28_333_333 * 60 * 1_000_000_000  # a minute edge of the wall clock (2023-11-14)


def at(seconds_into_window: float) -> ManualClock:
    """A manual wall clock ``seconds_into_window`` after a minute edge."""
    return ManualClock(wall_ns=T0_NS + round(seconds_into_window * 1e9))


class WakeUps:
    """The wake-up delays a budget asks the event loop for, recorded exactly as computed.

    The timer itself runs on the real loop clock, which a manual clock cannot move; its
    delay is what says where the budget thinks the next window starts. ``fire`` plays
    the pending wake-up on the manual clock: advance by the delay, run what the timer
    runs (``_pump``).
    """

    def __init__(self, budget: WeightBudget) -> None:
        self.budget = budget
        self.delays: list[float] = []
        schedule = budget._schedule

        def record(delay: float) -> None:
            self.delays.append(delay)
            schedule(delay)

        budget._schedule = record  # type: ignore[method-assign]  # a spy on the timer's delay

    def fire(self, clock: ManualClock) -> float:
        timer = self.budget._timer
        assert timer is not None and not timer.cancelled(), "nobody is waiting for a window"
        delay = self.delays[-1]
        assert delay > 0, f"the wake-up is due {-delay:.3f} s in the past: the budget would spin"
        due = timer.when() - asyncio.get_running_loop().time()
        assert due <= delay, f"the timer is due in {due:.3f} s, not in {delay:.3f} s"
        timer.cancel()
        clock.advance(delay)
        self.budget._pump()
        return delay


def test_the_weight_window_edges_are_exact() -> None:
    """Used weight belongs to the window [k*60, (k+1)*60) of the exchange's clock: it is
    still there 1 ms before the edge and gone exactly at it."""
    clock = at(0.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    budget.note_server_used(90)
    clock.advance(MINUTE - 0.001)
    assert budget.status().used == 90
    budget.note_server_used(95)  # the server's count wins while it is the same window
    assert budget.status().used == 95
    clock.advance(0.001)
    assert budget.status().used == 0
    budget.note_server_used(5)  # a header in the new window starts its count
    clock.advance(MINUTE - 0.001)
    assert budget.status().used == 5
    clock.advance(0.001)
    assert budget.status().used == 0


async def started(budget: WeightBudget, weight: int) -> asyncio.Task[None]:
    """An acquire, run one step: it is done then exactly when it did not have to wait."""
    task = asyncio.create_task(budget.acquire(weight))
    await asyncio.sleep(0)
    return task


async def test_a_call_that_exactly_fills_the_budget_is_not_delayed() -> None:
    """The budget is ``limit * SAFETY`` (98 of 100): reaching it exactly is allowed, one
    more unit waits for the next window; an oversized call in an empty window still goes
    (it would never fit)."""
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    wake_ups = WakeUps(budget)
    assert int(100 * SAFETY) == 98
    assert (await started(budget, 97)).done()
    assert (await started(budget, 1)).done(), "a call that exactly fills the budget waited"
    assert budget.status().used == 98
    late = await started(budget, 1)
    assert not late.done() and budget.status().waiting == 1, "a call over the budget went"
    wake_ups.fire(clock)
    await asyncio.sleep(0)
    assert late.done(), "the next window did not take the waiting call"
    assert budget.status().used == 1
    clock.advance(MINUTE)
    assert (await started(budget, 250)).done(), "an oversized call never goes"
    assert budget.status().used == 250
    budget.close()


@pytest.mark.parametrize(("into_window", "offset_ms", "wake_after"), [
    (10.0, 0, 50.05),  # local = exchange time: the rest of this minute (+50 ms of margin)
    (10.0, 30_000, 20.05),  # the exchange 30 s ahead: its minute ends 30 s sooner
    (59.999, 0, 0.051),  # just before the edge
])
async def test_a_spent_window_wakes_its_waiters_at_the_next_exchange_minute(
        into_window: float, offset_ms: int, wake_after: float) -> None:
    clock = at(into_window)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock, offset_ms))
    wake_ups = WakeUps(budget)
    await budget.acquire(98)
    waiter = asyncio.create_task(budget.acquire(60))
    await asyncio.sleep(0)
    assert budget.status().waiting == 1
    assert wake_ups.fire(clock) == pytest.approx(wake_after, abs=1e-6)
    await asyncio.wait_for(waiter, 1)
    assert (budget.status().used, budget.status().waiting) == (60, 0)
    budget.close()


async def test_priorities_resync_before_backfill_before_polling() -> None:
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    wake_ups = WakeUps(budget)
    await budget.acquire(98)  # this window is spent
    order: list[str] = []

    async def call(name: str, prio: Priority) -> None:
        await budget.acquire(60, int(prio))
        order.append(name)

    tasks = [asyncio.create_task(call("poll", Priority.POLL)),
             asyncio.create_task(call("backfill", Priority.BACKFILL)),
             asyncio.create_task(call("resync", Priority.RESYNC))]
    await asyncio.sleep(0)
    assert budget.status().waiting == 3
    for expected in (["resync"], ["resync", "backfill"], ["resync", "backfill", "poll"]):
        # the first wake-up is due at the end of this minute, each later one a minute on
        assert wake_ups.fire(clock) == pytest.approx(50.05 if expected == ["resync"]
                                                     else MINUTE, abs=1e-6)
        await asyncio.sleep(0)
        assert order == expected  # one per window, most urgent first
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    budget.close()


def test_the_weight_window_follows_the_exchange_clock() -> None:
    """Binance counts weight per minute of *its* clock: with the exchange 30 s ahead of
    us, its minute turns over when ours is half way. The budget reads the same
    ExchangeClock that clock sync keeps measured (it used to assume offset 0)."""
    local = ManualClock(wall_ns=1_700_000_050_000_000_000)  # :10 past a local minute
    exchange = ExchangeClock(local)
    budget = WeightBudget(limit=100, window_s=60.0, clock=exchange)
    budget.used = 90
    local.advance(25)  # local :35, exchange (offset 0) :35: same window
    assert budget.status().used == 90
    exchange.offset_ms = 30_000  # the next sync measures the exchange 30 s ahead
    assert budget.status().used == 0  # exchange :05 of the next minute: a fresh window


def paused_on(clock: ManualClock, monkeypatch: MonkeyPatch) -> ManualClock:
    """The budget's monotonic clock (429/418 pauses) is ``clock`` too: a pause ends exactly
    when the test moves it. The monotonic origin is arbitrary; ``clock.mono`` is its now."""
    monkeypatch.setattr(budget_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_a_new_budget_reports_an_empty_window_and_no_pause(monkeypatch: MonkeyPatch) -> None:
    clock = paused_on(ManualClock(wall_ns=T0_NS, mono=0.5), monkeypatch)  # just booted
    budget = WeightBudget(limit=1200, window_s=MINUTE, clock=ExchangeClock(clock))
    assert budget.status() == BudgetStatus(
        limit=1200, window_s=60.0, used=0, waiting=0, blocked_for_s=0.0, banned=False,
        block_reason="", spent_total=0, rate_limited=0, bans=0)


async def test_spent_weight_is_totalled_across_windows_and_refunds_come_off_it() -> None:
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))

    def counts() -> tuple[int, int]:
        st = budget.status()
        return st.used, st.spent_total

    await budget.acquire(30)
    await budget.acquire(20)
    assert counts() == (50, 50)
    budget.refund(20)  # a call that never reached the server
    assert counts() == (30, 30)
    clock.advance(MINUTE)
    await budget.acquire(5)
    assert counts() == (5, 35)  # the window is new, the total is not
    budget.refund(30)  # more than this window holds: used never goes below 0
    assert counts() == (0, 5)


async def test_a_call_that_does_not_fit_waits_even_behind_one_unit_of_weight() -> None:
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    wake_ups = WakeUps(budget)
    budget.note_server_used(1)  # somebody else's one unit
    late = await started(budget, 98)  # 1 + 98 > 98: only an empty window takes it
    assert not late.done()
    wake_ups.fire(clock)
    await asyncio.sleep(0)
    assert late.done() and budget.status().used == 98
    budget.close()
    budget.close()  # closing twice is harmless


async def test_a_cancelled_waiter_at_the_head_does_not_hold_up_the_others() -> None:
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    wake_ups = WakeUps(budget)
    await budget.acquire(98)
    gone = await started(budget, 10)  # first in the queue, then its caller gives up
    kept = await started(budget, 20)
    gone.cancel()
    await asyncio.sleep(0)
    assert budget.status().waiting == 1
    wake_ups.fire(clock)
    await asyncio.sleep(0)
    assert kept.done() and gone.cancelled()
    assert (budget.status().used, budget.status().spent_total) == (20, 118)
    budget.close()


async def test_a_call_without_a_priority_waits_like_polling() -> None:
    """The default priority is POLL's (2): ahead of anything less urgent queued earlier,
    behind nothing of its own rank that came after it."""
    clock = at(10.0)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))
    wake_ups = WakeUps(budget)
    await budget.acquire(98)
    order: list[str] = []

    async def call(name: str, *priority: int) -> None:
        await budget.acquire(60, *priority)
        order.append(name)

    tasks = [asyncio.create_task(call("bulk", 3)), asyncio.create_task(call("default")),
             asyncio.create_task(call("poll", int(Priority.POLL)))]
    await asyncio.sleep(0)
    for expected in (["default"], ["default", "poll"], ["default", "poll", "bulk"]):
        wake_ups.fire(clock)
        await asyncio.sleep(0)
        assert order == expected
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    budget.close()


async def test_a_pause_holds_every_call_until_its_end_and_keeps_the_longest_reason(
        monkeypatch: MonkeyPatch) -> None:
    """A 429/418 pause runs on the monotonic clock; a later block replaces it only when it
    ends later (a tie keeps the first). Every block is counted, whatever it changed."""
    clock = paused_on(at(10.0), monkeypatch)
    budget = WeightBudget(limit=100, window_s=MINUTE, clock=ExchangeClock(clock))

    def pause() -> tuple[float, bool, str, int, int]:
        st = budget.status()
        return st.blocked_for_s, st.banned, st.block_reason, st.rate_limited, st.bans

    budget.block(2.0, banned=True, reason="IP banned")
    budget.block(2.0, banned=False, reason="rate limited")  # ends at the same time
    budget.block(1.0, banned=True, reason="IP banned again")  # ends sooner
    budget.block(1.0, banned=False, reason="rate limited again")
    assert pause() == (2.0, True, "IP banned", 2, 2)
    call = await started(budget, 1)
    assert not call.done() and budget.status().used == 0  # nothing goes during a pause
    clock.advance(1.5)
    assert pause() == (0.5, True, "IP banned", 2, 2)
    clock.advance(0.5)  # exactly its end
    assert pause() == (0.0, False, "", 2, 2)
    budget._pump()  # what the wake-up timer runs
    await asyncio.sleep(0)
    assert call.done() and budget.status().used == 1
    budget.close()


def limited_exchange(**kw: object) -> LocalExchange:
    kw = {"weight_window_s": 2.0, **kw}
    return LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=0, weight_limit=300, **kw))


async def configured_client(ex: LocalExchange, clock: ExchangeClock | None = None) -> RestClient:
    rest = RestClient(ex.rest_url, budget=WeightBudget(clock=clock))
    info = await fetch_exchange_info(rest, ("BTCUSDT",))
    assert (info.weight_limit, info.weight_window_s) == (300, ex.config.weight_window_s)
    rest.budget.configure(info.weight_limit, info.weight_window_s)
    return rest


IP = "127.0.0.1"


def on_manual_time(ex: LocalExchange, clock: ManualClock, monkeypatch: MonkeyPatch) -> None:
    """The exchange's limiter reads ``clock`` instead of the wall clock, so it and a budget
    on ``ExchangeClock(clock)`` turn their windows together, when the test moves it."""
    limiter = ex.limiter
    charge, used = limiter.charge, limiter.used
    monkeypatch.setattr(limiter, "charge", lambda ip, weight, now: charge(
        ip, weight, clock.time_ns() / 1e9))
    monkeypatch.setattr(limiter, "used", lambda ip, now: used(ip, clock.time_ns() / 1e9))


async def manual_exchange(ex: LocalExchange, clock: ManualClock,
                          monkeypatch: MonkeyPatch) -> RestClient:
    on_manual_time(ex, clock, monkeypatch)
    rest = await configured_client(ex, ExchangeClock(clock))
    used = ex.limiter.used(IP, 0)
    assert used == rest.budget.status().used == 20  # exchangeInfo, on the manual clock
    return rest


async def test_a_burst_never_crosses_the_exchange_limit() -> None:
    """Real time end to end (2 s windows): the wake-up timer, not the test, turns windows."""
    async with limited_exchange() as ex:
        rest = await configured_client(ex)
        t0 = time.monotonic()
        bodies = await asyncio.gather(*(rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
                                        for _ in range(120)))  # 600 weight: 2+ windows
        elapsed = time.monotonic() - t0
        await rest.close()
        assert len(bodies) == 120
        assert ex.limiter.rejected == 0  # not one 429/418
        assert ex.limiter.peak_accepted <= 300
        assert elapsed > 1.0  # it waited for new windows instead of pushing on


async def test_server_header_counts_weight_used_by_others_on_the_same_ip(
        http, monkeypatch: MonkeyPatch) -> None:
    """What the clock tests cannot show: the client reads ``X-MBX-USED-WEIGHT-1M`` and its
    window edges are the exchange limiter's, so weight spent by others makes it wait,
    and the wait ends when the exchange's window turns."""
    clock = at(59.8)  # the wake-up is then 0.25 s of real time away
    async with limited_exchange(weight_window_s=MINUTE) as ex:
        rest = await manual_exchange(ex, clock, monkeypatch)
        for _ in range(47):  # another process on this IP spends 235
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                assert r.status == 200
        assert ex.limiter.used(IP, 0) == 255
        for _ in range(7):  # our first reply reveals 260 used; six more fit under 294
            await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        assert rest.budget_status().used == ex.limiter.used(IP, 0) == 290
        blocked = asyncio.create_task(rest.get("/api/v3/depth", {"symbol": "BTCUSDT"}))
        await wait_until(lambda: rest.budget_status().waiting == 1, 5, "the call to wait")
        assert ex.limiter.used(IP, 0) == 290  # it was not sent
        clock.advance(0.2)  # both windows turn
        await asyncio.wait_for(blocked, 5)
        assert rest.budget_status().used == ex.limiter.used(IP, 0) == 5
        await rest.close()
        assert ex.limiter.rejected == 0


async def test_429_pauses_every_call_until_retry_after_and_never_earns_a_ban(
        http, monkeypatch: MonkeyPatch) -> None:
    clock = at(59.5)  # Retry-After: the 0.5 s left of the window, rounded up to 1 s
    async with limited_exchange(weight_window_s=MINUTE) as ex:
        rest = await manual_exchange(ex, clock, monkeypatch)
        for _ in range(56):  # others spend the rest of the 300
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                assert r.status == 200
        assert ex.limiter.used(IP, 0) == 300
        with pytest.raises(RestRejected) as err:  # we have seen no header since ours (20)
            await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        assert err.value.status == 429 and err.value.code == -1003
        assert err.value.retry_after_s == 1
        st = rest.budget_status()
        assert 0 < st.blocked_for_s <= 1 and not st.banned and "rate limited" in st.block_reason
        clock.advance(0.5)  # the exchange's window turns; the pause still runs (real time)
        t0 = time.monotonic()
        await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})  # waits out Retry-After
        assert time.monotonic() - t0 > 0.5
        await rest.close()
        assert ex.limiter.rejected == 1  # the one 429; no 418 followed


async def test_418_ban_stops_all_rest_until_it_ends(http, monkeypatch: MonkeyPatch) -> None:
    clock = at(59.0)
    async with limited_exchange(weight_window_s=MINUTE, ban_seconds=1.5) as ex:
        rest = await manual_exchange(ex, clock, monkeypatch)
        statuses = []
        for _ in range(70):  # another client ignores the 429 and gets the IP banned
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                statuses.append(r.status)
                if r.status == 418:
                    break
        assert statuses == [200] * 56 + [429, 418]
        with pytest.raises(RestRejected) as err:
            await rest.get("/api/v3/time")
        assert err.value.status == 418
        assert err.value.retry_after_s == 2  # 1.5 s of ban left, rounded up
        st = rest.budget_status()
        assert st.banned and st.bans == 1 and "IP banned" in st.block_reason
        clock.advance(2.0)  # the ban and the window are over on the exchange
        t0 = time.monotonic()
        await rest.get("/api/v3/time")  # waits until the ban is over (real time)
        assert time.monotonic() - t0 > 0.5
        await rest.close()
        assert ex.limiter.rejected == 3  # the 429, the 418, our one 418


async def test_engine_adopts_announced_limit_and_reports_unknown_symbols() -> None:
    async with limited_exchange() as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        await wait_until(lambda: engine.live.info.info is not None, 10, "exchangeInfo")
        assert engine.status().budget.limit == 300
        await engine.stop()
        bad = Engine(settings_for(ex, ("symbols", ["BTCUSDT", "NOPEUSDT"])))
        await bad.start()
        await wait_until(lambda: bad.status().symbols_unknown, 10, "unknown symbol noticed")
        assert bad.status().symbols_unknown == ("NOPEUSDT",)
        await bad.stop()
        rest = RestClient(ex.rest_url)
        with pytest.raises(UnknownSymbols) as exc:
            await fetch_exchange_info(rest, ("BTCUSDT", "NOPEUSDT", "ZZZUSDT"))
        assert exc.value.symbols == ["NOPEUSDT", "ZZZUSDT"]
        await rest.close()


async def test_cli_rejects_an_unknown_symbol_with_one_line() -> None:
    async with limited_exchange() as ex:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui", "--no-ui", "--no-storage", "-s", "NOPEUSDT",
            "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"binance-live: config error: symbols: 'NOPEUSDT' not listed by {ex.rest_url}"
        "/api/v3/exchangeInfo (not a Binance spot symbol)"]


def test_budget_refunds_calls_that_never_reached_the_server() -> None:
    async def run() -> int:
        rest = RestClient("http://127.0.0.1:1")
        with pytest.raises(RestUnavailable) as info:  # the one error family, never aiohttp's
            await rest.get("/api/v3/exchangeInfo")
        assert not info.value.sent and info.value.retryable
        await rest.close()
        return rest.budget.used

    assert asyncio.run(run()) == 0
