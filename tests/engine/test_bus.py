"""The callback bus: isolation of slow and raising consumers, overflow policies, counters."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest

import engine.bus as bus_module
from engine.bus import Bus, ConsumerStats, Mode, Overflow
from engine.events import BookTicker, BookTop, LedgerEntry, Trade
from tests import factories
from tests.factories import book_ticker


def trade(i: int, symbol: str = "BTCUSDT") -> Trade:
    """Trade ``i``, received now (the bus measures lag from ``recv_ns``)."""
    return factories.trade(i, symbol=symbol, price=1.0 + i, qty=0.5, event_time=i,
                           buyer_is_maker=bool(i % 2), recv_ns=time.time_ns())


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def test_routes_by_type_and_delivers_in_order() -> None:
    bus = Bus()
    trades: list[int] = []
    tickers: list[int] = []

    async def on_trade(ev: Trade) -> None:
        trades.append(ev.trade_id)

    bus.subscribe(on_trade, kinds=[Trade])
    bus.subscribe(lambda ev: tickers.append(ev.update_id), kinds=[BookTicker], mode="inline")
    bus.start()
    bus.publish_many([trade(1), book_ticker(10), trade(2), trade(3), book_ticker(11)])
    await wait_for(lambda: len(trades) == 3)
    assert trades == [1, 2, 3]
    assert tickers == [10, 11]
    await bus.stop()


async def test_raising_consumer_is_counted_logged_once_and_keeps_running(caplog) -> None:
    bus = Bus()
    good: list[int] = []

    def explode(ev: Trade) -> None:
        if ev.trade_id % 2:
            raise RuntimeError("model crashed")
        raise KeyError("other")

    bad = bus.subscribe(explode, name="bad", mode="task")
    bus.subscribe(lambda ev: good.append(ev.trade_id), name="good", mode="inline")
    bus.start()
    bus.publish_many([trade(i) for i in range(100)])
    await wait_for(lambda: bad.delivered == 100)
    assert good == list(range(100))
    st = bad.stats()
    assert st.errors == 100
    assert st.error_kinds == {"KeyError": 50, "RuntimeError": 50}
    logged = [r for r in caplog.records if "consumer 'bad' raised" in r.getMessage()]
    assert len(logged) == 2  # once per exception kind, not once per event
    await bus.stop()


async def test_slow_async_consumer_does_not_slow_others_and_drops_oldest() -> None:
    bus = Bus()
    fast: list[int] = []
    release = asyncio.Event()
    slow_seen: list[int] = []

    async def slow(ev: Trade) -> None:
        await release.wait()
        slow_seen.append(ev.trade_id)

    async def quick(ev: Trade) -> None:
        fast.append(ev.trade_id)

    slow_c = bus.subscribe(slow, name="slow", capacity=10, policy=Overflow.DROP_OLDEST)
    bus.subscribe(quick, name="fast", capacity=100_000)
    bus.start()
    t0 = time.perf_counter()
    for i in range(5000):
        bus.publish(trade(i))
    publish_s = time.perf_counter() - t0
    await wait_for(lambda: len(fast) == 5000)
    assert publish_s < 1.0  # publishing never waited for the slow consumer
    assert slow_c.pending() == 9  # plus one in the callback
    assert slow_c.dropped == 5000 - 10
    release.set()
    await wait_for(lambda: slow_c.pending() == 0)
    # what survived is the newest backlog, in order
    assert slow_seen == list(range(4990, 5000))
    await bus.stop()


class Held:
    """A consumer callback that keeps the worker inside its first event until released.

    While the worker is provably busy (``entered`` is set and it cannot take another
    event), whatever is published next only fills the queue, so which events the policy
    keeps and what the counters say is exact, independent of thread or task scheduling.
    """

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self.seen: list[tuple[str, str, int]] = []
        self.entered = threading.Event()
        self._release_thread = threading.Event()
        self._release_task = asyncio.Event()
        self.callback: Any = self._async if mode is Mode.TASK else self._sync

    def _sync(self, ev: Any) -> None:
        self.seen.append(key(ev))
        if len(self.seen) == 1:
            self.entered.set()
            self._release_thread.wait(10)  # bounded: a failing test never hangs the run

    async def _async(self, ev: Any) -> None:
        self.seen.append(key(ev))
        if len(self.seen) == 1:
            self.entered.set()
            await self._release_task.wait()

    def release(self) -> None:
        self._release_thread.set()
        self._release_task.set()


def key(ev: Any) -> tuple[str, str, int]:
    """What identifies an event here: its kind, symbol and id."""
    return ev.kind, ev.symbol, ev.trade_id if isinstance(ev, Trade) else ev.update_id


def ticker(i: int, symbol: str = "BTCUSDT") -> BookTicker:
    return book_ticker(i, symbol=symbol, recv_ns=time.time_ns())


# (events published while the worker is held, capacity, what is kept in delivery order,
#  how many are dropped). Event 0 (a BTCUSDT trade) is the one the worker holds.
KEEP_LATEST_BURST = [trade(1), trade(2, "ETHUSDT"), ticker(3), trade(4), trade(5, "SOLUSDT"),
                     ticker(6)]
POLICY_CASES: dict[Overflow, tuple[list[Any], int, list[tuple[str, str, int]], int]] = {
    # a ring: the newest `capacity` survive
    Overflow.DROP_OLDEST: ([trade(i) for i in range(1, 11)], 4,
                           [("trade", "BTCUSDT", i) for i in (7, 8, 9, 10)], 6),
    # the backlog survives, the newcomers are discarded
    Overflow.DROP_NEWEST: ([trade(i) for i in range(1, 11)], 4,
                           [("trade", "BTCUSDT", i) for i in (1, 2, 3, 4)], 6),
    # per (type, symbol): trade 4 supersedes trade 1 (and moves to the back), SOLUSDT
    # evicts the oldest key (the ETHUSDT trade) at capacity, ticker 6 supersedes ticker 3;
    # a ticker and a trade of one symbol are different keys
    Overflow.KEEP_LATEST: (KEEP_LATEST_BURST, 3,
                           [("trade", "BTCUSDT", 4), ("trade", "SOLUSDT", 5),
                            ("bookTicker", "BTCUSDT", 6)], 3),
}


@pytest.mark.parametrize("policy", list(Overflow))
@pytest.mark.parametrize("mode", [Mode.TASK, Mode.THREAD])
async def test_overflow_policy_keeps_exactly_the_right_events(mode: Mode,
                                                               policy: Overflow) -> None:
    burst, capacity, kept, dropped = POLICY_CASES[policy]
    bus = Bus()
    held = Held(mode)
    c = bus.subscribe(held.callback, kinds=[Trade, BookTicker], name="held", policy=policy,
                      capacity=capacity, mode=mode)
    assert c.mode is mode
    bus.start()
    try:
        bus.publish(trade(0))
        await wait_for(held.entered.is_set)  # the worker is inside event 0 and stays there
        bus.publish_many(burst)
        st = c.stats()
        assert (st.queued, st.dropped, st.delivered, st.errors) == (len(kept), dropped, 0, 0)
        assert st.max_queued == len(kept)
        assert held.seen == [("trade", "BTCUSDT", 0)]  # nothing overtook the held event
    finally:
        held.release()
    await wait_for(lambda: c.delivered == 1 + len(kept))
    await bus.stop()
    assert held.seen == [("trade", "BTCUSDT", 0), *kept]
    st = c.stats()
    assert (st.queued, st.dropped, st.delivered, st.errors) == (0, dropped, 1 + len(kept), 0)
    assert st.max_queued == capacity  # the high-water mark outlives the backlog, every policy


@pytest.mark.parametrize("policy", list(Overflow))
def test_inline_consumers_have_no_queue_whatever_the_policy(policy: Overflow) -> None:
    """Inline callbacks run on the publish path: nothing is queued, so nothing is dropped,
    however small the capacity."""
    bus = Bus()
    seen: list[tuple[str, str, int]] = []
    c = bus.subscribe(lambda ev: seen.append(key(ev)), kinds=[Trade, BookTicker],
                      policy=policy, capacity=1, mode="inline")
    bus.start()  # no worker to start: delivery happens inside publish
    burst = [trade(0), *KEEP_LATEST_BURST]
    bus.publish_many(burst)
    assert seen == [key(ev) for ev in burst]
    st = c.stats()
    assert (st.queued, st.dropped, st.delivered, st.errors) == (0, 0, len(burst), 0)
    assert st.max_queued == 0


async def test_blocking_sync_consumer_runs_in_its_thread_and_loop_stays_free() -> None:
    bus = Bus()
    held = Held(Mode.THREAD)
    fast: list[int] = []
    c = bus.subscribe(held.callback, name="model", capacity=50, policy="drop-newest")
    assert c.mode is Mode.THREAD
    bus.subscribe(lambda ev: fast.append(ev.trade_id), name="fast", mode="inline")
    bus.start()
    try:
        bus.publish(trade(0))
        await wait_for(held.entered.is_set)  # the model is stuck on event 0
        for i in range(1, 1000):
            bus.publish(trade(i))
            if i % 100 == 0:
                await asyncio.sleep(0)  # the loop keeps running while the model blocks
        assert fast == list(range(1000))
        assert (c.pending(), c.dropped, c.delivered) == (50, 1000 - 1 - 50, 0)
    finally:
        held.release()
    await wait_for(lambda: c.pending() == 0 and c.delivered == 51)
    # drop-newest keeps the oldest backlog: the 50 published right after the held one
    assert [i for _, _, i in held.seen] == list(range(51))
    await bus.stop()


async def test_keep_latest_conflates_per_type_and_symbol() -> None:
    bus = Bus()
    release = asyncio.Event()
    seen: list[tuple[str, int]] = []

    async def ui(ev: Trade) -> None:
        await release.wait()
        seen.append((ev.symbol, ev.trade_id))

    c = bus.subscribe(ui, policy=Overflow.KEEP_LATEST, capacity=16)
    bus.start()
    bus.publish(trade(0))
    await asyncio.sleep(0)  # the worker takes the first event and blocks on it
    for i in range(1, 1001):
        bus.publish(trade(i, "BTCUSDT"))
        bus.publish(trade(i, "ETHUSDT"))
    assert c.pending() == 2
    release.set()
    await wait_for(lambda: c.pending() == 0 and len(seen) == 3)
    assert seen[1:] == [("BTCUSDT", 1000), ("ETHUSDT", 1000)]
    assert c.dropped == 2 * 1000 - 2
    await bus.stop()


async def test_stop_drains_queued_events() -> None:
    bus = Bus()
    got: list[int] = []
    bus.subscribe(lambda ev: got.append(ev.trade_id), name="recorder", capacity=100_000)
    bus.start()
    bus.publish_many([trade(i) for i in range(20_000)])
    await bus.stop(timeout=10)
    assert got == list(range(20_000))


async def test_lag_and_stats_are_readable() -> None:
    bus = Bus()
    c = bus.subscribe(lambda ev: None, name="x", mode="task")
    bus.start()
    bus.publish(trade(1))
    await wait_for(lambda: c.delivered == 1)
    st = bus.stats()[0]
    assert st.name == "x" and st.delivered == 1 and st.dropped == 0 and st.errors == 0
    assert 0 <= st.lag_ms < 5000
    await bus.stop()


def test_invalid_subscriptions_are_rejected() -> None:
    bus = Bus()

    async def coro(ev: Trade) -> None: ...

    with pytest.raises(ValueError):
        bus.subscribe(coro, mode="inline")
    with pytest.raises(ValueError):
        bus.subscribe(lambda ev: None, capacity=0)
    # the reason is the message a developer sees
    for kw, reason in [({"callback": coro, "mode": "inline"},
                        "inline consumers must be plain (sync) callables"),
                       ({"callback": coro, "mode": "thread"},
                        "async callbacks run as tasks, not threads"),
                       ({"callback": lambda ev: None, "capacity": 0}, "capacity must be >= 1")]:
        with pytest.raises(ValueError) as err:
            bus.subscribe(**kw)
        assert str(err.value) == reason
    assert bus.consumers == ()
    assert bus.subscribe(lambda ev: None, capacity=1).capacity == 1  # the smallest queue


async def test_subscriptions_change_only_on_the_thread_that_owns_the_bus() -> None:
    """The publish path reads the routing table without a lock: a subscription change
    from another thread (a writer thread, a model's thread) is refused, not raced."""
    import threading

    bus = Bus()
    consumer = bus.subscribe(lambda e: None, mode="inline")
    raised: list[BaseException] = []

    def elsewhere() -> None:
        for change in (lambda: bus.subscribe(lambda e: None, mode="inline"),
                       lambda: bus.unsubscribe(consumer)):
            try:
                change()
            except RuntimeError as exc:
                raised.append(exc)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join(5)
    assert [str(e) for e in raised] == [
        f"Bus.{what} from another thread: subscriptions change only on the thread that owns "
        "the bus (the event loop's)" for what in ("subscribe", "unsubscribe")]
    assert bus.consumers == (consumer,)


def test_a_new_consumer_reports_its_settings_and_zero_counters() -> None:
    bus = Bus()

    def model(ev: Trade) -> None: ...

    async def ui(ev: Trade) -> None: ...

    stats = [bus.subscribe(model).stats(),
             bus.subscribe(ui, name="ui", policy="keep-latest", capacity=7).stats()]
    assert stats == [
        ConsumerStats(name="model", mode="thread", policy="drop-oldest", capacity=10_000,
                      delivered=0, dropped=0, errors=0, queued=0, max_queued=0, lag_ms=0.0,
                      error_kinds={}),
        ConsumerStats(name="ui", mode="task", policy="keep-latest", capacity=7, delivered=0,
                      dropped=0, errors=0, queued=0, max_queued=0, lag_ms=0.0, error_kinds={})]


def test_a_consumer_is_named_after_its_callback_unless_named() -> None:
    bus = Bus()

    def recorder(ev: Trade) -> None: ...

    class Model:  # a callable object has no __name__
        def __call__(self, ev: Trade) -> None: ...

    assert [bus.subscribe(cb, name=name, mode="inline").name
            for cb, name in ((recorder, None), (Model(), None), (recorder, "rec-2"))] == [
        "recorder", "consumer", "rec-2"]


def test_publish_counts_every_event_even_with_no_consumer() -> None:
    bus = Bus()
    bus.publish(trade(1))
    bus.publish_many([trade(2), ticker(3)])
    bus.publish_many([])
    assert bus.published == 3
    assert bus.type_counts == {Trade: 2, BookTicker: 1}


async def test_routes_follow_kinds_and_unsubscribe_and_wants_tells_producers() -> None:
    """A consumer gets the kinds it names (local events only when named); ``wants`` says
    whether anyone takes a type, so producers can skip building what nobody reads."""
    bus = Bus()
    assert not bus.wants(Trade)  # nobody subscribed yet
    trades: list[tuple[str, str, int]] = []
    market: list[str] = []
    local: list[str] = []
    t = bus.subscribe(lambda ev: trades.append(key(ev)), kinds=[Trade], name="trades",
                      mode="task")
    m = bus.subscribe(lambda ev: market.append(ev.kind), name="market", mode="inline")
    assert [bus.wants(k) for k in (Trade, BookTicker, LedgerEntry, BookTop)] == [
        True, True, False, False]
    ledger = bus.subscribe(lambda ev: local.append(ev.kind), kinds=[LedgerEntry],
                           name="ledger", mode="inline")
    assert bus.wants(LedgerEntry) and not bus.wants(BookTop)
    bus.start()
    entry = LedgerEntry(what="connect", stream="btcusdt@trade")
    bus.publish_many([trade(1), ticker(2), entry, trade(3)])
    await wait_for(lambda: t.delivered == 2)
    assert [(s.name, s.delivered, s.errors) for s in bus.stats()] == [
        ("trades", 2, 0), ("market", 3, 0), ("ledger", 1, 0)]
    assert trades == [("trade", "BTCUSDT", 1), ("trade", "BTCUSDT", 3)]
    assert (market, local) == (["trade", "bookTicker", "trade"], ["ledger"])
    bus.unsubscribe(m)
    assert bus.consumers == (t, ledger)
    assert [bus.wants(k) for k in (Trade, BookTicker, LedgerEntry)] == [True, False, True]
    bus.publish_many([ticker(4), entry])
    assert (market, local) == (["trade", "bookTicker", "trade"], ["ledger", "ledger"])
    await bus.stop()


def test_an_inline_consumer_counts_only_what_it_was_given() -> None:
    """Inline deliveries are counted from the bus's per-type counts, from subscribe on."""
    bus = Bus()
    bus.publish_many([trade(i) for i in range(5)])
    c = bus.subscribe(lambda ev: None, kinds=[Trade], mode="inline")
    bus.publish_many([trade(5), ticker(6), trade(7)])
    assert c.delivered == 2


def test_a_raising_inline_consumer_is_counted_and_publish_carries_on(caplog) -> None:
    bus = Bus()
    boom = ZeroDivisionError("boom")
    after: list[int] = []

    def fragile(ev: Trade) -> None:
        if ev.trade_id == 2:
            raise boom

    c = bus.subscribe(fragile, mode="inline")
    bus.subscribe(lambda ev: after.append(ev.trade_id), name="after", mode="inline")
    bus.publish_many([trade(1), trade(2), trade(3)])  # nothing escapes into the feed
    assert after == [1, 2, 3]
    st = c.stats()
    assert (st.delivered, st.errors, st.error_kinds) == (3, 1, {"ZeroDivisionError": 1})
    [record] = [r for r in caplog.records if r.name == "binance_live.bus"]
    assert (record.levelname, record.getMessage()) == (
        "ERROR", "consumer 'fragile' raised ZeroDivisionError (logged once per kind, "
                 "counted after)")
    assert record.exc_info is not None and record.exc_info[1] is boom  # with its traceback


async def test_an_async_consumer_that_raises_is_counted_by_kind_and_carries_on() -> None:
    bus = Bus()
    seen: list[int] = []

    async def model(ev: Trade) -> None:
        seen.append(ev.trade_id)
        if ev.trade_id % 3 == 0:
            raise LookupError("no such level")

    c = bus.subscribe(model)
    bus.start()
    bus.publish_many([trade(i) for i in range(1, 8)])
    await wait_for(lambda: c.delivered == 7)
    assert seen == [1, 2, 3, 4, 5, 6, 7]
    assert (c.stats().errors, c.stats().error_kinds) == (2, {"LookupError": 2})
    await bus.stop()


async def test_a_task_consumer_delivers_in_batches_and_lets_the_feed_run_between() -> None:
    """One batch (``batch`` events, 256 by default) per event-loop step: whatever else is
    ready (the feed) runs between two batches. Every step is observable because the test
    itself yields exactly once per step."""
    bus = Bus()
    small = bus.subscribe(lambda ev: None, name="small", mode="task", batch=3)
    default = bus.subscribe(lambda ev: None, name="default", mode="task")
    bus.publish_many([trade(i) for i in range(600)])  # queued: the bus is not started
    bus.start()
    steps = []
    for _ in range(4):
        await asyncio.sleep(0)
        steps.append((small.delivered, default.delivered))
    assert steps == [(3, 256), (6, 512), (9, 600), (12, 600)]
    await bus.stop()


NOW_NS = 1_700_000_000_000_000_000


@pytest.fixture
def frozen_bus_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    """The bus reads the wall clock only to measure lag: frozen, every lag is exact."""
    monkeypatch.setattr(bus_module, "time", SimpleNamespace(time_ns=lambda: NOW_NS))
    return NOW_NS


def aged(i: int, age_ns: int) -> Trade:
    """Trade ``i``, received ``age_ns`` before the frozen now (0: never stamped)."""
    return factories.trade(i, recv_ns=NOW_NS - age_ns if age_ns else 0)


async def test_task_lag_is_the_age_of_the_last_stamped_event_of_a_batch(
        frozen_bus_clock: int) -> None:
    bus = Bus()
    lags: list[float] = []
    c = bus.subscribe(lambda ev: lags.append(c.stats().lag_ms), mode="task", batch=2)
    ms = 1_000_000
    # batches [1 ms, 2 ms], [3 ms, 4 ms], [5 ms, unstamped]: an unstamped event (built
    # locally, never received) leaves the lag as it was
    bus.publish_many([aged(i, age * ms) for i, age in enumerate([1, 2, 3, 4, 5, 0])])
    bus.start()
    await wait_for(lambda: c.delivered == 6)
    assert lags == [0.0, 0.0, 2.0, 2.0, 4.0, 4.0]  # what each callback saw
    assert c.stats().lag_ms == 4.0
    await bus.stop()


async def test_a_thread_consumer_samples_its_lag_every_64_events(
        frozen_bus_clock: int) -> None:
    bus = Bus()
    lags: list[float] = []
    c = bus.subscribe(lambda ev: lags.append(c.stats().lag_ms), mode="thread", capacity=200)
    bus.publish_many([aged(i, (i + 1) * 1000) for i in range(130)])  # event i: (i+1) µs old
    bus.start()
    await wait_for(lambda: c.delivered == 130)
    # sampled after the 64th and the 128th delivery: events 63 and 127
    assert lags == [0.0] * 64 + [0.064] * 64 + [0.128] * 2
    assert c.stats().lag_ms == 0.128
    await bus.stop()


async def test_an_idle_task_consumer_wakes_for_each_new_event() -> None:
    bus = Bus()
    got: list[int] = []

    async def ui(ev: Trade) -> None:
        got.append(ev.trade_id)

    c = bus.subscribe(ui, name="ui")
    bus.start()
    for burst in ([1], [2, 3], [4]):  # two in a row: the second finds the worker woken
        bus.publish_many([trade(i) for i in burst])
        await wait_for(lambda: len(got) == burst[-1])  # noqa: B023 - awaited right here
        for _ in range(3):
            await asyncio.sleep(0)  # the worker parks again, waiting for the next event
    assert got == [1, 2, 3, 4]
    assert (c.stats().errors, c.pending()) == (0, 0)
    await bus.stop()


class NoPoll(threading.Event):
    """A thread consumer's wake-up event with the safety-net poll switched off.

    The worker parks in ``wait`` with a 50 ms timeout only in case a wake-up were lost.
    With this double a wait ends only when the event is set, so a lost wake-up shows as a
    delivery that never comes instead of as 50 ms of latency. ``parked`` is set while the
    worker is inside ``wait``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.parked = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.parked.set()
        try:
            return super().wait(30)
        finally:
            self.parked.clear()


async def test_an_idle_thread_consumer_is_woken_by_the_publish_not_by_its_poll() -> None:
    bus = Bus()
    got: list[int] = []
    c = bus.subscribe(lambda ev: got.append(ev.trade_id), name="woken", mode="thread")
    c._wake = wake = NoPoll()
    bus.start()
    for i in range(1, 4):
        await wait_for(wake.parked.is_set)  # idle: only a wake-up can move it now
        bus.publish(trade(i))
        await wait_for(lambda: len(got) == i)  # noqa: B023 - awaited right here
    await bus.stop()
    assert got == [1, 2, 3]


async def test_an_event_that_arrives_as_the_thread_goes_idle_is_not_lost() -> None:
    """The worker finds its queue empty and, before it announces that it is idle, an event
    arrives: the publisher saw a busy worker and set no wake-up, so the worker's re-check
    must find the event (the poll is off: nothing else would)."""
    bus = Bus()
    got: list[int] = []
    c = bus.subscribe(lambda ev: got.append(ev.trade_id), name="racing", mode="thread")
    c._wake = NoPoll()
    take = c._take
    late: list[Trade] = [trade(2)]

    def take_then_publish() -> Any:
        ev = take()
        if ev is bus_module._EMPTY and late:  # the queue is empty: the event arrives now
            c.offer(late.pop())
        return ev

    c._take = take_then_publish  # type: ignore[method-assign]  # forces the interleaving
    bus.publish(trade(1))
    bus.start()
    await wait_for(lambda: len(got) == 2)
    await bus.stop()
    assert got == [1, 2]


def workers(prefix: str) -> tuple[list[threading.Thread], list[str]]:
    """The live worker threads and the worker task names of consumers named ``prefix``*."""
    threads = [t for t in threading.enumerate() if t.name.startswith(f"consumer:{prefix}")]
    tasks = sorted(t.get_name() for t in asyncio.all_tasks() if not t.done()
                   and t.get_name().startswith(f"consumer:{prefix}"))
    return threads, tasks


async def test_workers_start_with_the_bus_once_and_inline_consumers_have_none() -> None:
    bus = Bus()

    async def ui(ev: Trade) -> None: ...

    bus.subscribe(lambda ev: None, name="life-model")  # a thread
    bus.subscribe(ui, name="life-ui")  # a task
    bus.subscribe(lambda ev: None, name="life-counter", mode="inline")  # runs in publish
    assert workers("life-") == ([], [])  # nothing runs before the bus starts
    bus.start()
    bus.start()  # a second start starts nothing more
    bus.subscribe(lambda ev: None, name="life-late")  # joins a running bus: starts at once
    threads, tasks = workers("life-")
    assert sorted(t.name for t in threads) == ["consumer:life-late", "consumer:life-model"]
    assert all(t.daemon for t in threads)  # a blocked model never keeps the process alive
    assert tasks == ["consumer:life-ui"]
    await bus.stop()
    for t in threads:
        assert not t.is_alive()
    bus.subscribe(lambda ev: None, name="life-after")  # the bus is stopped: nothing starts
    assert workers("life-") == ([], [])


async def test_stop_cancels_a_task_consumer_that_does_not_finish_in_time() -> None:
    bus = Bus()
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def stuck(ev: Trade) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    c = bus.subscribe(stuck, name="stuck-ui")
    bus.start()
    bus.publish_many([trade(1), trade(2)])
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.wait_for(bus.stop(timeout=0.05), 5)
    assert cancelled.is_set()
    assert (c.delivered, c.pending()) == (0, 1)  # what was still queued is dropped
    await asyncio.wait_for(bus.stop(timeout=0.05), 5)  # stopping again is harmless
    assert workers("stuck-ui") == ([], [])


async def test_stop_gives_up_on_a_blocked_thread_consumer_after_the_timeout() -> None:
    bus = Bus()
    held = Held(Mode.THREAD)
    bus.subscribe(held.callback, name="stuck-model", mode="thread")
    bus.start()
    bus.publish_many([trade(1), trade(2)])
    await wait_for(held.entered.is_set)
    [thread], _ = workers("stuck-model")
    try:
        await asyncio.wait_for(bus.stop(timeout=0.05), 5)
        assert thread.is_alive()  # still inside the callback: stop did not wait for it
        await asyncio.wait_for(bus.stop(timeout=0.05), 5)  # stopping again is harmless
    finally:
        held.release()
    await asyncio.get_running_loop().run_in_executor(None, thread.join, 5)
    assert not thread.is_alive()  # released, it delivers what was queued and ends
    assert held.seen == [("trade", "BTCUSDT", 1), ("trade", "BTCUSDT", 2)]
