"""One connection slot of a shard: connect, subscribe, watch, roll over, reconnect.

A :class:`Link` owns the connection task of one slot (``connection.redundancy`` slots per
shard): it connects with the shard's streams (in the URL, the rest by SUBSCRIBE paced by
its own :class:`RateLimiter`), pings a silent connection and replaces a stale one,
reconnects forever with the one retry policy (:class:`~engine.retry.Backoff`), and
replaces its connection make-before-break before Binance's 24 h cut and on
``serverShutdown``: the replacement is opened and subscribed, both feed the shared id
gate for a short overlap, and only then is the old one closed (1000). The timing rules
themselves are pure functions in :mod:`engine.feed.watch`.

A link sees its manager only through a :class:`LinkContext` (settings, the receive
path, the ledger, id sources) and its shard only through the set of desired streams
and one ``on_end`` callback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine.binance.control import PARAMS_PER_REQUEST, ControlReply, request
from engine.config import Connection
from engine.events import MAX_DETAIL, Event, Ledger, LedgerEntry, ServerShutdown
from engine.feed import watch
from engine.feed.receiver import Receiver
from engine.feed.websocket import Sink, WsClient, open_ws
from engine.retry import Backoff
from engine.tasks import TaskSet, cancel_and_wait

log = logging.getLogger("binance_live.link")

URL_STREAMS_BUDGET = 2000  # characters of stream names put in the URL; the rest via SUBSCRIBE
ROLLOVER_OVERLAP_S = 0.5  # both connections feed the gate this long after the switch


class LinkState(StrEnum):
    IDLE = "idle"  # no streams wanted
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"  # waiting out the backoff delay
    STOPPED = "stopped"


@dataclass(frozen=True)
class ConnectionStatus:
    conn_id: int
    shard: int
    state: LinkState
    streams: int
    subscribed: int
    uptime_s: float
    reconnects: int
    retry_in_s: float
    last_error: str
    stale_replacements: int
    server_shutdowns: int
    control_errors: int
    last_rx_age_s: float
    link: int = 0  # redundancy slot within the shard (0, or 0/1 with redundancy 2)
    rollovers: int = 0  # make-before-break replacements done
    rollover_failures: int = 0  # replacements that failed (old connection kept, retried)
    rollover_in_s: float = -1.0  # until the next planned rollover; -1: not open
    rolling_over: bool = False  # a replacement is being opened right now


@dataclass
class LinkContext:
    """What a link may use of its manager: settings, the receive path, the ledger."""

    cfg: Connection
    receiver: Receiver
    publish: Callable[[Event], None]  # ledger entries go onto the bus
    retire: Callable[[int], None]  # a closed connection owns no gate key any more
    conn_ids: Iterator[int]
    request_ids: Iterator[int]


class RateLimiter:
    """At most ``limit`` sends in any 1-second window (Binance counts pings and pongs too)."""

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self._sent: deque[float] = deque()

    def delay(self) -> float:
        now = self.clock()
        while self._sent and now - self._sent[0] >= 1.0:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            return 0.0
        return 1.0 - (now - self._sent[0]) + 0.001

    def note(self) -> None:
        self._sent.append(self.clock())

    async def acquire(self) -> None:
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.note()


class _Conn:
    """One WebSocket connection of a link: its socket, subscriptions and message budget."""

    def __init__(self, conn_id: int, max_messages_per_s: int) -> None:
        self.conn_id = conn_id
        self.client: WsClient | None = None
        self.active: set[str] = set()  # streams the server confirmed (URL or acked SUBSCRIBE)
        self.pending: dict[int, tuple[str, list[str]]] = {}  # request id -> (method, names)
        self.changed = asyncio.Event()
        self.limiter = RateLimiter(max_messages_per_s)  # Binance counts per connection
        self.shutdown_seen = False
        self.shutdown_counted = False
        self.alert: asyncio.Future[None] | None = None  # resolved on serverShutdown
        self.data_ns = 0  # receive time of the last frame batch with market data
        self.opened_at = 0.0
        self.opened_ns = 0
        self.planned_at = 0.0  # wall time (epoch s) of the planned daily rollover; 0 = none
        self.end_kind = Ledger.DISCONNECT
        self.reason = ""  # why it was opened as a replacement
        self.sync: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.client is not None and not self.client.closed.done()


class Link:
    """One connection slot of a shard (``connection.redundancy`` of them per shard).

    ``desired`` is the shard's set of wanted streams (shared, read only here);
    ``on_end(link, conn_id, reason)`` is called when a connection ended unplanned.
    """

    def __init__(self, ctx: LinkContext, desired: set[str], shard: int, slot: int,
                 on_end: Callable[[Link, int, str], None]) -> None:
        self.ctx = ctx
        self.desired = desired
        self.shard = shard
        self.slot = slot
        self.on_end = on_end
        cfg = ctx.cfg
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, cfg.backoff_reset_after_s)
        self.delays: deque[tuple[float, float]] = deque(maxlen=256)  # (ceiling, delay) history
        self.conn: _Conn | None = None  # the connection in use
        self.spare: _Conn | None = None  # its replacement while a rollover is under way
        self.conn_id = 0
        self.state = LinkState.IDLE
        self.connected_at = 0.0
        self.retry_at = 0.0
        self.rollover_retry_at = 0.0
        self.reconnects = 0
        self.connects = 0
        self.stale_replacements = 0
        self.server_shutdowns = 0
        self.control_errors = 0
        self.rollovers = 0
        self.rollover_failures = 0
        self.last_error = ""
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._tasks = TaskSet()  # subscription loops and retiring connections

    @property
    def client(self) -> WsClient | None:
        return self.conn.client if self.conn is not None else None

    @property
    def active(self) -> set[str]:
        return self.conn.active if self.conn is not None else set()

    @property
    def open(self) -> bool:
        return self.conn is not None and self.conn.open

    def notify(self) -> None:
        """``desired`` changed: wake the idle loop and every open connection's sync loop."""
        self._wake.set()
        for conn in (self.conn, self.spare):
            if conn is not None:
                conn.changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"shard:{self.shard}:{self.slot}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        for conn in (self.conn, self.spare):
            if conn is not None and conn.client is not None:
                conn.client.close(1000, why="stopped")
        await cancel_and_wait(task)
        await self._tasks.close()
        self.state = LinkState.STOPPED

    # -- the connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            while not self.desired:
                self.state = LinkState.IDLE
                self._wake.clear()
                await self._wake.wait()
            self.state = LinkState.CONNECTING
            conn = await self._open()
            delay = self._next_delay() if conn is None else await self._serve(conn)
            if delay > 0:
                self.state = LinkState.RECONNECTING
                self.retry_at = time.monotonic() + delay
                await asyncio.sleep(delay)

    def _url(self, names: list[str]) -> str:
        base = self.ctx.cfg.ws_url.rstrip("/")
        for suffix in ("/stream", "/ws"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return f"{base}/stream?streams={'/'.join(names)}" if names else f"{base}/stream"

    def _sink(self, conn: _Conn) -> Sink:
        """The receive path of one connection (its reads; see engine.feed.receiver)."""
        receive = self.ctx.receiver.receive
        conn_id = conn.conn_id
        special: list[Any] = []

        def sink(frames: list[bytes], recv_ns: int) -> None:
            if receive(frames, recv_ns, conn_id, special):
                conn.data_ns = recv_ns
            if special:
                self._on_special(conn, special)
                special.clear()

        return sink

    def _on_special(self, conn: _Conn, special: list[Any]) -> None:
        for event in special:  # rare: control replies and serverShutdown
            if type(event) is ControlReply:
                self.on_reply(conn, event)
            elif type(event) is ServerShutdown:
                conn.shutdown_seen = True
                alert = conn.alert
                if alert is not None and not alert.done():
                    alert.set_result(None)  # wake the link: roll over now

    async def _open(self) -> _Conn | None:
        """Connect with the desired streams (URL first, the rest by SUBSCRIBE)."""
        ctx = self.ctx
        in_url: list[str] = []
        budget = URL_STREAMS_BUDGET
        for name in sorted(self.desired):
            budget -= len(name) + 1
            if budget < 0:
                break
            in_url.append(name)
        conn = _Conn(next(ctx.conn_ids), ctx.cfg.max_messages_per_s)
        self.connects += 1
        try:
            client = await open_ws(self._url(in_url), self._sink(conn), ctx.cfg.connect_timeout_s)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.last_error = _describe(exc)
            ctx.retire(conn.conn_id)
            return None
        conn.client = client
        conn.active = set(in_url)
        conn.opened_at = time.monotonic()
        conn.opened_ns = time.time_ns()
        conn.planned_at = watch.next_daily(ctx.cfg.rollover_at, time.time(),
                                           watch.daily_offset_s(self.slot))
        conn.sync = self._tasks.spawn(self._sync_loop(conn), name=f"sync:{conn.conn_id}")
        conn.changed.set()  # streams beyond the URL budget, or changed meanwhile
        self._note(Ledger.CONNECT, conn.conn_id, detail=f"{len(in_url)} streams in the URL",
                   stream=",".join(in_url))
        return conn

    def _adopt(self, conn: _Conn) -> None:
        self.conn = conn
        self.conn_id = conn.conn_id
        self.connected_at = conn.opened_at
        self.state = LinkState.OPEN

    async def _serve(self, conn: _Conn) -> float:
        """Keep a connection (and its successors) alive; return the delay before the
        next connect once the link has lost its connection."""
        cfg = self.ctx.cfg
        tick = watch.tick_s(cfg.idle_ping_after_s, cfg.stale_after_s)
        after_s = watch.staggered_age_s(cfg.rollover_after_s, self.slot)
        self._adopt(conn)
        attempt: asyncio.Task[_Conn | None] | None = None
        pinged_at = 0.0
        try:
            while True:
                client = conn.client
                assert client is not None
                if conn.alert is None:
                    conn.alert = asyncio.get_running_loop().create_future()
                waits: set[asyncio.Future[Any]] = {client.closed}
                timeout = tick
                if attempt is not None:
                    waits.add(attempt)
                else:
                    if not conn.shutdown_seen:
                        waits.add(conn.alert)
                    mono = time.monotonic()
                    timeout = watch.wait_timeout(
                        tick=tick, age_s=mono - conn.opened_at, after_s=after_s,
                        wall_s=time.time(), planned_at=conn.planned_at,
                        retry_in_s=self.rollover_retry_at - mono)
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = time.monotonic()
                if attempt is not None and attempt.done():
                    new, attempt = attempt.result(), None
                    if new is not None:
                        self._switch(conn, new)
                        conn, pinged_at = new, 0.0
                        continue
                    self.rollover_failures += 1
                    self.rollover_retry_at = now + self._next_delay()
                if client.closed.done():
                    if attempt is not None:  # the replacement is on its way: it takes over
                        new, attempt = await attempt, None
                        if new is not None:
                            self._end(conn, planned=False)
                            self._adopt(new)
                            conn, pinged_at = new, 0.0
                            continue
                    self._end(conn, planned=False)
                    if conn.shutdown_seen:
                        return 0.0  # the server asked us to go: reconnect now, no penalty
                    self.last_error = client.close_reason
                    return self._next_delay()
                if conn.shutdown_seen and not conn.shutdown_counted:
                    conn.shutdown_counted = True
                    self.server_shutdowns += 1
                    conn.end_kind = Ledger.SERVER_SHUTDOWN
                    self.rollover_retry_at = 0.0  # roll over now, whatever failed before
                silent = now - client.last_rx
                if watch.is_stale(silent, cfg.stale_after_s):
                    self.stale_replacements += 1
                    conn.end_kind = Ledger.STALE
                    self.last_error = f"stale: nothing received for {silent:.1f}s"
                    client.abort(self.last_error)
                    continue
                if attempt is None and now >= self.rollover_retry_at:
                    reason = watch.rollover_reason(
                        age_s=now - conn.opened_at, after_s=after_s, wall_s=time.time(),
                        planned_at=conn.planned_at, rollover_at=cfg.rollover_at,
                        shutdown_seen=conn.shutdown_seen)
                    if reason:
                        attempt = asyncio.get_running_loop().create_task(
                            self._replace(conn, reason), name=f"rollover:{conn.conn_id}")
                if watch.should_ping(silent, now - pinged_at, cfg.idle_ping_after_s,
                                     conn.limiter.delay() == 0):
                    conn.limiter.note()
                    client.ping()
                    pinged_at = now
        except asyncio.CancelledError:  # stopped: the connection ends with the link
            self._end(conn, planned=False)
            raise
        finally:
            if attempt is not None:
                await cancel_and_wait(attempt)

    async def _replace(self, old: _Conn, reason: str) -> _Conn | None:
        """Open the replacement of ``old``; return it once it is subscribed to every
        desired stream and has delivered market data (or ``old`` is gone), else None."""
        cfg = self.ctx.cfg
        new = await self._open()
        if new is None:
            self._note(Ledger.ROLLOVER_FAILED, old.conn_id,
                       detail=f"{reason}: {self.last_error}")
            return None
        self.spare = new
        ok = False
        try:
            deadline = time.monotonic() + max(cfg.stale_after_s, 1.0)
            while True:
                assert new.client is not None
                if new.client.closed.done():
                    self.last_error = f"replacement closed: {new.client.close_reason}"
                    break
                subscribed = new.active >= self.desired
                if subscribed and (new.data_ns or not old.open):
                    ok = True
                    break
                if time.monotonic() > deadline:
                    if subscribed and old.data_ns <= new.opened_ns:
                        ok = True  # a quiet market: nothing flows on the old one either
                    else:
                        self.last_error = "replacement delivered no data"
                    break
                await asyncio.sleep(0.005)
        finally:
            self.spare = None
            if not ok:
                self._discard(new)
        if not ok:
            self._note(Ledger.ROLLOVER_FAILED, old.conn_id,
                       detail=f"{reason}: {self.last_error}")
            return None
        new.reason = reason
        return new

    def _switch(self, old: _Conn, new: _Conn) -> None:
        """The replacement delivers: it becomes the link's connection; ``old`` closes
        after a short overlap, so frames it still has in flight are not lost."""
        now = time.monotonic()
        self.rollovers += 1
        self.backoff.connected_for(now - old.opened_at)
        self._adopt(new)
        self._note(Ledger.ROLLOVER, new.conn_id, start_ns=old.opened_ns,
                   detail=f"conn {old.conn_id} replaced by conn {new.conn_id} ({new.reason})",
                   stream=",".join(sorted(self.desired)))
        self._tasks.spawn(self._retire(old, new.conn_id), name=f"retire:{old.conn_id}")

    async def _retire(self, old: _Conn, successor: int) -> None:
        client = old.client
        assert client is not None
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(client.closed), ROLLOVER_OVERLAP_S)
            client.close(1000, why=f"rolled over to conn {successor}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(client.closed), 3.0)
        finally:
            if not client.closed.done():
                client.abort("rolled over")
            self._end(old, planned=True)

    def _discard(self, conn: _Conn) -> None:
        """A replacement that never took over: close it, no reconnect counted."""
        if conn.client is not None and not conn.client.closed.done():
            conn.client.close(1000, why="replacement discarded")
        if conn.sync is not None:
            conn.sync.cancel()
        self.ctx.retire(conn.conn_id)

    def _end(self, conn: _Conn, *, planned: bool) -> None:
        """Bookkeeping of a connection that has closed."""
        if conn.sync is not None:
            conn.sync.cancel()
        self.ctx.retire(conn.conn_id)
        client = conn.client
        reason = client.close_reason if client is not None else ""
        if planned:
            return  # its replacement already delivers: nothing was lost, no ledger row
        self.backoff.connected_for(time.monotonic() - conn.opened_at)
        self.reconnects += 1
        self._note(conn.end_kind, conn.conn_id, detail=reason, start_ns=conn.opened_ns,
                   stream=",".join(sorted(self.desired)))
        self.on_end(self, conn.conn_id, reason)

    def _next_delay(self) -> float:
        ceiling = self.backoff.ceiling()
        delay = self.backoff.next_delay()
        self.delays.append((ceiling, delay))
        return delay

    def _note(self, what: Ledger, conn_id: int, *, stream: str = "", detail: str = "",
              start_ns: int = 0) -> None:
        """A ledger entry about one of this link's connections."""
        now = time.time_ns()
        self.ctx.publish(LedgerEntry(what=what, stream=stream, detail=detail[:MAX_DETAIL],
                                     start_ns=start_ns or now, end_ns=now, recv_ns=now,
                                     conn=conn_id))

    async def _sync_loop(self, conn: _Conn) -> None:
        """Converge one open connection's subscriptions on ``desired``."""
        ids = self.ctx.request_ids
        client = conn.client
        assert client is not None
        while True:
            await conn.changed.wait()
            conn.changed.clear()
            desired = self.desired
            in_flight = {n for _, names in conn.pending.values() for n in names}
            subscribe = sorted(desired - conn.active - in_flight)
            unsubscribe = sorted((conn.active - desired) - in_flight)
            for method, names in (("UNSUBSCRIBE", unsubscribe), ("SUBSCRIBE", subscribe)):
                for i in range(0, len(names), PARAMS_PER_REQUEST):
                    chunk = names[i:i + PARAMS_PER_REQUEST]
                    await conn.limiter.acquire()
                    if client.closed.done():
                        return
                    req_id = next(ids)
                    conn.pending[req_id] = (method, chunk)
                    client.send_text(request(method, chunk, req_id))

    def on_reply(self, conn: _Conn, reply: ControlReply) -> None:
        pending = conn.pending.pop(reply.id, None) if isinstance(reply.id, int) else None
        if reply.error is not None:
            self.control_errors += 1
            self.last_error = f"{pending[0] if pending else 'request'} refused: " \
                              f"{reply.error.code} {reply.error.msg}"
            log.warning("shard %d: %s", self.shard, self.last_error)
            return
        if pending is None:
            return
        method, names = pending
        self._note(Ledger(method.lower()), conn.conn_id, stream=",".join(names))
        if method == "SUBSCRIBE":
            conn.active.update(n for n in names if n in self.desired)
        else:
            conn.active.difference_update(names)
        conn.changed.set()  # desired may have moved while the request was in flight

    def status(self) -> ConnectionStatus:
        now = time.monotonic()
        conn = self.conn
        client = conn.client if conn is not None else None
        cfg = self.ctx.cfg
        rollover_in = -1.0
        if self.state is LinkState.OPEN and conn is not None:
            rollover_in = watch.seconds_to_rollover(
                age_s=now - conn.opened_at,
                after_s=watch.staggered_age_s(cfg.rollover_after_s, self.slot),
                wall_s=time.time(), planned_at=conn.planned_at)
        return ConnectionStatus(
            conn_id=self.conn_id, shard=self.shard, state=self.state,
            streams=len(self.desired), subscribed=len(self.active),
            uptime_s=now - self.connected_at if self.state is LinkState.OPEN else 0.0,
            reconnects=self.reconnects,
            retry_in_s=max(0.0, self.retry_at - now)
            if self.state is LinkState.RECONNECTING else 0.0,
            last_error=self.last_error, stale_replacements=self.stale_replacements,
            server_shutdowns=self.server_shutdowns, control_errors=self.control_errors,
            last_rx_age_s=now - client.last_rx if client is not None else 0.0,
            link=self.slot, rollovers=self.rollovers,
            rollover_failures=self.rollover_failures, rollover_in_s=rollover_in,
            rolling_over=self.spare is not None)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
