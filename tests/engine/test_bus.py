"""The callback bus: isolation of slow and raising consumers, overflow policies, counters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.bus import Bus, Mode, Overflow
from engine.events import BookTicker, Trade
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


async def test_blocking_sync_consumer_runs_in_its_thread_and_loop_stays_free() -> None:
    bus = Bus()
    gate = threading.Event()
    blocked: list[int] = []
    fast: list[int] = []

    def blocking_model(ev: Trade) -> None:
        gate.wait(5)  # an ML model stuck on something
        blocked.append(ev.trade_id)

    c = bus.subscribe(blocking_model, name="model", capacity=50, policy="drop-newest")
    assert c.mode is Mode.THREAD
    bus.subscribe(lambda ev: fast.append(ev.trade_id), name="fast", mode="inline")
    bus.start()
    for i in range(1000):
        bus.publish(trade(i))
        if i % 100 == 0:
            await asyncio.sleep(0)  # the loop keeps running while the model blocks
    assert len(fast) == 1000
    await wait_for(lambda: c.pending() == 50)
    assert c.dropped >= 1000 - 51
    assert c.delivered + c.pending() + c.dropped + 1 >= 1000
    gate.set()
    await wait_for(lambda: c.pending() == 0)
    # drop-newest keeps the oldest backlog
    assert blocked[0] == 0
    assert blocked[1:] == sorted(blocked[1:])
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
    assert len(raised) == 2 and all("another thread" in str(e) for e in raised)
    assert bus.consumers == (consumer,)
