"""Callback bus: fan-out of market events to consumers that can never stall the feed.

Publishing only appends to each interested consumer's own bounded queue (or calls an
``inline`` consumer directly), so the receive path costs the same whatever the
consumers do. Each consumer declares what happens when its queue is full:

* ``drop-oldest`` – a ring buffer: the oldest queued event is discarded (default);
* ``drop-newest`` – the incoming event is discarded, the queue keeps its backlog;
* ``keep-latest`` – conflation: only the newest event per (type, symbol) is kept, which
  suits displays and models that need the current state, not every tick.

Drops are counted per consumer. Async callbacks run in an asyncio task, sync callbacks
in a thread of their own (so a blocking ML model cannot freeze the event loop), and
``inline`` sync callbacks run on the publish path (for cheap, trusted work such as
counters or book maintenance). An exception in a callback is counted, logged once per
exception type, and the consumer carries on with the next event.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.events import LOCAL_EVENT_TYPES, ROUTED_EVENT_TYPES, Event
from engine.tasks import cancel_and_wait

log = logging.getLogger("binance_live.bus")

_EMPTY = object()

Callback = Callable[[Any], Any] | Callable[[Any], Awaitable[Any]]


class Overflow(StrEnum):
    DROP_OLDEST = "drop-oldest"
    DROP_NEWEST = "drop-newest"
    KEEP_LATEST = "keep-latest"


class Mode(StrEnum):
    INLINE = "inline"
    TASK = "task"
    THREAD = "thread"


@dataclass(frozen=True)
class ConsumerStats:
    name: str
    mode: str
    policy: str
    capacity: int
    delivered: int
    dropped: int
    errors: int
    queued: int
    max_queued: int
    lag_ms: float
    error_kinds: dict[str, int] = field(default_factory=dict)


class Consumer:
    """One subscriber: its callback, queue, overflow policy and counters."""

    def __init__(self, callback: Callback, name: str, kinds: tuple[type, ...] | None,
                 policy: Overflow, capacity: int, mode: Mode, batch: int,
                 type_counts: dict[type, int]) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._type_counts = type_counts  # the bus's per-type publish counts (inline stats)
        self.callback = callback
        self.name = name
        self.kinds = kinds
        self.policy = policy
        self.capacity = capacity
        self.mode = mode
        self.batch = batch
        self.is_async = inspect.iscoroutinefunction(callback)
        self._delivered = 0  # task/thread modes; inline ones are counted by the bus per type
        # inline: the bus's type counts at subscribe (Bus.subscribe sets them)
        self._counted_from: dict[type, int] = {}  # pragma: no mutate (equivalent: see above)
        self.dropped = 0
        self.errors = 0
        self.max_queued = 0
        self.lag_ns = 0
        self.error_kinds: dict[str, int] = {}
        self._queue: deque[Any] = deque()
        self._latest: dict[tuple[type, str], Any] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._thread_idle = False  # pragma: no mutate (equivalent: True only adds a spurious wake)
        self._wake = threading.Event()
        self._closing = False  # pragma: no mutate (equivalent: None is falsy too)
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        # dispatch chosen once, not per event (the bus calls an inline callback itself)
        if policy is Overflow.KEEP_LATEST:
            self.offer = self._offer_latest  # type: ignore[method-assign]  # once, not per event

    # -- publish side (hot path) --------------------------------------------------------

    def offer(self, event: Any) -> None:
        queue = self._queue
        if len(queue) >= self.capacity:
            self.dropped += 1
            if self.policy is Overflow.DROP_NEWEST:
                return
            queue.popleft()
        queue.append(event)
        self._wake_worker()

    def _offer_latest(self, event: Any) -> None:
        # a symbol-less type (ServerShutdown) is one key: any constant default is the same
        key = (type(event), getattr(event, "symbol", ""))  # pragma: no mutate (equivalent)
        latest = self._latest
        if key in latest:
            self.dropped += 1  # superseded, conflated away
            del latest[key]
        elif len(latest) >= self.capacity:
            self.dropped += 1
            del latest[next(iter(latest))]
        latest[key] = event
        self._wake_worker()

    def _deliver(self, event: Any) -> None:
        try:
            self.callback(event)
        except Exception as exc:  # noqa: BLE001 - isolation is the point
            self._count_error(exc)
        self._delivered += 1

    @property
    def delivered(self) -> int:
        if self.mode is Mode.INLINE:
            counts = self._type_counts
            return sum(counts.get(t, 0) - base for t, base in self._counted_from.items())
        return self._delivered

    def _wake_worker(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        elif self._thread_idle:
            self._wake.set()

    # -- consumer side ------------------------------------------------------------------

    def _take(self) -> Any:
        """The oldest pending event, or _EMPTY. One at a time, so ``pending`` is exact; the
        high-water mark is taken here, off the publish path, whatever the policy."""
        keep_latest = self.policy is Overflow.KEEP_LATEST
        n = len(self._latest) if keep_latest else len(self._queue)
        if not n:
            return _EMPTY
        if n > self.max_queued:  # pragma: no mutate (equivalent: >= stores the same value)
            self.max_queued = n
        if keep_latest:
            latest = self._latest
            return latest.pop(next(iter(latest)))
        return self._queue.popleft()

    def pending(self) -> int:
        return len(self._latest) if self.policy is Overflow.KEEP_LATEST else len(self._queue)

    def _count_error(self, exc: BaseException) -> None:
        self.errors += 1
        kind = type(exc).__name__
        seen = self.error_kinds.get(kind, 0)
        self.error_kinds[kind] = seen + 1
        if not seen:
            log.error("consumer %r raised %s (logged once per kind, counted after)",
                      self.name, kind, exc_info=exc)

    def _note_lag(self, event: Any) -> None:
        recv_ns = event.recv_ns  # every routed event has one (0: not stamped on receive)
        if recv_ns:
            self.lag_ns = time.time_ns() - recv_ns

    async def _run_task(self) -> None:
        loop = asyncio.get_running_loop()
        callback = self.callback
        is_async = self.is_async
        take = self._take
        while True:
            event = take()
            if event is _EMPTY:
                if self._closing:
                    return
                self._waiter = loop.create_future()
                await self._waiter
                continue
            done = 0
            while event is not _EMPTY:
                if is_async:
                    try:
                        await callback(event)
                    except Exception as exc:  # noqa: BLE001
                        self._count_error(exc)
                    self._delivered += 1
                else:
                    self._deliver(event)
                last = event
                done += 1
                if done >= self.batch:
                    break
                event = take()
            self._note_lag(last)
            await asyncio.sleep(0)  # let the feed run between batches

    def _run_thread(self) -> None:
        take = self._take
        while True:
            event = take()
            if event is _EMPTY:
                if self._closing:
                    return
                self._thread_idle = True
                if self.pending():  # re-check after announcing idleness: no lost wake-up
                    self._thread_idle = False  # pragma: no mutate (equivalent: spurious wake)
                    continue
                # a safety net only: no wake-up is lost (tests run with the poll disabled)
                self._wake.wait(0.05)  # pragma: no mutate (equivalent: see above)
                self._wake.clear()
                self._thread_idle = False  # pragma: no mutate (equivalent: spurious wake)
                continue
            self._deliver(event)
            if not self._delivered & 63:
                self._note_lag(event)

    def start(self) -> None:
        if self.mode is Mode.TASK and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run_task(), name=f"consumer:{self.name}")
        elif self.mode is Mode.THREAD and self._thread is None:
            self._thread = threading.Thread(target=self._run_thread, daemon=True,
                                            name=f"consumer:{self.name}")
            self._thread.start()

    async def stop(self, timeout: float) -> None:
        """Deliver what is queued (within ``timeout``), then end the worker."""
        self._closing = True
        self._wake_worker()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                await cancel_and_wait(self._task)  # what is still queued is dropped
            self._task = None
        if self._thread is not None:
            thread = self._thread
            await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout)
            self._thread = None

    def stats(self) -> ConsumerStats:
        return ConsumerStats(
            name=self.name, mode=self.mode.value, policy=self.policy.value,
            capacity=self.capacity, delivered=self.delivered, dropped=self.dropped,
            errors=self.errors, queued=self.pending(), max_queued=max(self.max_queued,
                                                                       self.pending()),
            lag_ms=self.lag_ns / 1e6, error_kinds=dict(self.error_kinds))


class Bus:
    """Routes each event by its type to the consumers subscribed to that type.

    Subscriptions change only on the thread that created the bus (the event loop's):
    the publish path reads the routing table without a lock, so a change from another
    thread (a writer thread, a model's thread) raises instead of racing it.
    """

    def __init__(self) -> None:
        self._owner_thread = threading.get_ident()
        self._consumers: list[Consumer] = []
        self._routes: dict[type, tuple[Consumer, ...]] = {}
        # The publish path's own table: per type, the callables to run in subscription
        # order: an inline consumer's callback itself (no wrapper frame per event), or
        # a queued consumer's ``offer``. ``_owner`` maps them back for error accounting.
        self._calls: dict[type, tuple[Callable[[Any], Any], ...]] = {}
        # (rebuilt by every subscribe, before any call exists that could raise)
        self._owner: dict[int, Consumer] = {}  # pragma: no mutate (equivalent: see above)
        self.type_counts: dict[type, int] = {}  # events published per type
        self._started = False  # pragma: no mutate (equivalent: None is falsy too)
        self.published = 0

    def subscribe(self, callback: Callback, *, kinds: Iterable[type[Event]] | None = None,
                  name: str | None = None, policy: Overflow | str = Overflow.DROP_OLDEST,
                  capacity: int = 10_000, mode: Mode | str | None = None,
                  batch: int = 256) -> Consumer:
        """Add a consumer; ``kinds`` None means every *market* event type.

        Local events — ledger entries (``LedgerEntry``: connects, disconnects, gaps)
        and local book tops (``BookTop``) — go only to consumers that name them in ``kinds``.
        """
        self._check_thread("subscribe")
        is_async = inspect.iscoroutinefunction(callback)
        chosen = Mode(mode) if mode is not None else (Mode.TASK if is_async else Mode.THREAD)
        if chosen is Mode.INLINE and is_async:
            raise ValueError("inline consumers must be plain (sync) callables")
        if chosen is Mode.THREAD and is_async:
            raise ValueError("async callbacks run as tasks, not threads")
        consumer = Consumer(callback, name or str(getattr(callback, "__name__", "consumer")),
                            tuple(kinds) if kinds is not None else None, Overflow(policy),
                            capacity, chosen, batch, self.type_counts)
        self._consumers.append(consumer)
        self._rebuild_routes()
        if chosen is Mode.INLINE:
            consumer._counted_from = {t: self.type_counts.get(t, 0)  # noqa: SLF001
                                      for t, cs in self._routes.items() if consumer in cs}
        if self._started:
            consumer.start()
        return consumer

    def unsubscribe(self, consumer: Consumer) -> None:
        self._check_thread("unsubscribe")
        self._consumers.remove(consumer)
        self._rebuild_routes()

    def _check_thread(self, what: str) -> None:
        if threading.get_ident() != self._owner_thread:
            raise RuntimeError(f"Bus.{what} from another thread: subscriptions change only "
                               "on the thread that owns the bus (the event loop's)")

    def _rebuild_routes(self) -> None:
        routes: dict[type, tuple[Consumer, ...]] = {}
        for typ in ROUTED_EVENT_TYPES:
            routes[typ] = tuple(c for c in self._consumers
                                if (c.kinds is None and typ not in LOCAL_EVENT_TYPES)
                                or (c.kinds is not None
                                    and any(issubclass(typ, k) for k in c.kinds)))
        self._routes = routes
        calls: dict[type, tuple[Callable[[Any], Any], ...]] = {}
        owner: dict[int, Consumer] = {}
        for typ, consumers in routes.items():
            fns = []
            for c in consumers:
                fn = c.callback if c.mode is Mode.INLINE else c.offer
                owner[id(fn)] = c
                fns.append(fn)
            calls[typ] = tuple(fns)
        self._calls = calls
        self._owner = owner

    def wants(self, typ: type[Event]) -> bool:
        """Whether any consumer takes ``typ`` (lets producers skip building unwanted events)."""
        return bool(self._routes.get(typ))

    def publish(self, event: Event) -> None:
        self.publish_many((event,))

    def publish_many(self, events: list[Any] | tuple[Any, ...]) -> None:
        self.published += len(events)
        calls = self._calls
        counts = self.type_counts
        for event in events:
            typ = type(event)
            counts[typ] = counts.get(typ, 0) + 1
            for fn in calls.get(typ, ()):
                try:
                    fn(event)
                except Exception as exc:  # noqa: BLE001 - an inline consumer raised
                    self._owner[id(fn)]._count_error(exc)  # noqa: SLF001

    def start(self) -> None:
        self._started = True
        for consumer in self._consumers:
            consumer.start()

    async def stop(
        self, timeout: float = 5.0,  # pragma: no mutate (equivalent: every caller passes one)
    ) -> None:
        await asyncio.gather(*(c.stop(timeout) for c in self._consumers))
        self._started = False  # pragma: no mutate (equivalent: None is falsy too)

    @property
    def consumers(self) -> tuple[Consumer, ...]:
        return tuple(self._consumers)

    def stats(self) -> list[ConsumerStats]:
        return [c.stats() for c in self._consumers]
