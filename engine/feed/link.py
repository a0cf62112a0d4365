"""One connection slot of a shard: connect, subscribe, watch, roll over, reconnect.

A :class:`Link` owns the connection task of one slot (``connection.redundancy`` slots per
shard): it connects with the shard's streams (in the URL, the rest by SUBSCRIBE paced by
its own :class:`RateLimiter`), pings a silent connection and replaces a stale one,
reconnects forever with the shared backoff policy, and replaces its connection
make-before-break before Binance's 24 h cut (``rollover_after_s`` / ``rollover_at``) and
on ``serverShutdown``: the replacement is opened and subscribed, both feed the manager's
id gate for a short overlap, and only then is the old one closed (1000).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from engine.retry import Backoff
from engine.config.settings import parse_hhmm
from engine.feed.websocket import WsClient, open_ws
from engine.events import ControlReply
from engine.tasks import cancel_and_wait

log = logging.getLogger("binance_live.link")

URL_STREAMS_BUDGET = 2000  # characters of stream names put in the URL; the rest via SUBSCRIBE
PARAMS_PER_REQUEST = 200  # streams per SUBSCRIBE message
ROLLOVER_OVERLAP_S = 0.5  # both connections feed the gate this long after the switch



if TYPE_CHECKING:
    from engine.feed.manager import Shard

@dataclass(frozen=True)
class ConnectionStatus:
    conn_id: int
    shard: int
    state: str  # connecting | open | reconnecting | idle | stopped
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
        self.end_kind = "disconnect"
        self.reason = ""  # why it was opened as a replacement
        self.sync: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.client is not None and not self.client.closed.done()


class Link:
    """One connection slot of a shard (``connection.redundancy`` of them per shard).

    It connects, subscribes, watches and reconnects with its own backoff, never giving
    up; before the connection's planned end (``rollover_after_s``, ``rollover_at``) and
    at once on ``serverShutdown`` it rolls over make-before-break: a replacement with the
    same streams is opened and subscribed, the old connection is closed (1000) only once
    the replacement delivers market data, and both feed the shared IdGate meanwhile.
    """

    def __init__(self, shard: Shard, slot: int) -> None:
        self.shard = shard
        self.slot = slot
        self.manager = shard.manager
        cfg = self.manager.cfg
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, cfg.backoff_reset_after_s)
        self.delays: deque[tuple[float, float]] = deque(maxlen=256)  # (ceiling, delay) history
        self.conn: _Conn | None = None  # the connection in use
        self.spare: _Conn | None = None  # its replacement while a rollover is under way
        self.conn_id = 0
        self.state = "idle"
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
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def client(self) -> WsClient | None:
        return self.conn.client if self.conn is not None else None

    @property
    def active(self) -> set[str]:
        return self.conn.active if self.conn is not None else set()

    def notify(self) -> None:
        """``desired`` changed: wake the idle loop and every open connection's sync loop."""
        self._wake.set()
        for conn in (self.conn, self.spare):
            if conn is not None:
                conn.changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"shard:{self.shard.index}:{self.slot}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        for conn in (self.conn, self.spare):
            if conn is not None and conn.client is not None:
                conn.client.close(1000, why="stopped")
        await cancel_and_wait(task)
        for t in list(self._retiring):
            await cancel_and_wait(t)
        self.state = "stopped"

    # -- the connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            while not self.shard.desired:
                self.state = "idle"
                self._wake.clear()
                await self._wake.wait()
            self.state = "connecting"
            conn = await self._open()
            if conn is None:
                delay = self._next_delay()
            else:
                delay = await self._serve(conn)
            if delay > 0:
                self.state = "reconnecting"
                self.retry_at = time.monotonic() + delay
                await asyncio.sleep(delay)

    def _url(self, names: list[str]) -> str:
        base = self.manager.cfg.ws_url.rstrip("/")
        for suffix in ("/stream", "/ws"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        return f"{base}/stream?streams={'/'.join(names)}" if names else f"{base}/stream"

    async def _open(self) -> _Conn | None:
        """Connect with the desired streams (URL first, the rest by SUBSCRIBE)."""
        mgr = self.manager
        in_url: list[str] = []
        budget = URL_STREAMS_BUDGET
        for name in sorted(self.shard.desired):
            budget -= len(name) + 1
            if budget < 0:
                break
            in_url.append(name)
        conn = _Conn(next(mgr.conn_ids), mgr.cfg.max_messages_per_s)
        self.connects += 1
        try:
            client = await open_ws(self._url(in_url), mgr.make_sink(self.shard, conn, self),
                                   mgr.cfg.connect_timeout_s)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.last_error = _describe(exc)
            mgr.gate.retire(conn.conn_id)
            return None
        conn.client = client
        conn.active = set(in_url)
        conn.opened_at = time.monotonic()
        conn.opened_ns = time.time_ns()
        conn.planned_at = _next_daily(mgr.cfg.rollover_at, time.time(), self.slot * 30.0)
        conn.sync = asyncio.get_running_loop().create_task(self._sync_loop(conn))
        conn.changed.set()  # streams beyond the URL budget, or changed meanwhile
        mgr.feed("connect", conn.conn_id, detail=f"{len(in_url)} streams in the URL",
                 stream=",".join(in_url))
        return conn

    def _adopt(self, conn: _Conn) -> None:
        self.conn = conn
        self.conn_id = conn.conn_id
        self.connected_at = conn.opened_at
        self.state = "open"

    async def _serve(self, conn: _Conn) -> float:
        """Keep a connection (and its successors) alive; return the delay before the
        next connect once the link has lost its connection."""
        cfg = self.manager.cfg
        tick = max(0.02, min(cfg.idle_ping_after_s, cfg.stale_after_s) / 4)
        after_s = cfg.rollover_after_s * (1.0 - 0.05 * self.slot)  # stagger redundant links
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
                    if mono < self.rollover_retry_at:  # a failed replacement: back off
                        due = self.rollover_retry_at - mono
                    else:
                        due = min(after_s - (mono - conn.opened_at),
                                  conn.planned_at - time.time() if conn.planned_at else tick)
                    timeout = max(0.001, min(tick, due))
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                now = time.monotonic()
                if attempt is not None and attempt.done():
                    new, attempt = attempt.result(), None
                    if new is not None:
                        self._switch(conn, new)
                        conn, pinged_at = new, 0.0
                        continue
                    self.rollover_failures += 1
                    delay = self._next_delay()
                    self.rollover_retry_at = now + delay
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
                    conn.end_kind = "server_shutdown"
                    self.rollover_retry_at = 0.0  # roll over now, whatever failed before
                silent = now - client.last_rx
                if silent > cfg.stale_after_s:
                    self.stale_replacements += 1
                    conn.end_kind = "stale"
                    self.last_error = f"stale: nothing received for {silent:.1f}s"
                    client.abort(self.last_error)
                    continue
                if attempt is None and now >= self.rollover_retry_at:
                    reason = ""
                    if conn.shutdown_seen:
                        reason = "serverShutdown"
                    elif now - conn.opened_at >= after_s:
                        reason = f"connection age {now - conn.opened_at:.0f}s"
                    elif conn.planned_at and time.time() >= conn.planned_at:
                        reason = f"daily rollover at {cfg.rollover_at} UTC"
                    if reason:
                        attempt = asyncio.get_running_loop().create_task(
                            self._replace(conn, reason))
                if silent > cfg.idle_ping_after_s and now - pinged_at > cfg.idle_ping_after_s \
                        and conn.limiter.delay() == 0:
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
        cfg = self.manager.cfg
        new = await self._open()
        if new is None:
            self.manager.feed("rollover_failed", old.conn_id, detail=f"{reason}: "
                              f"{self.last_error}")
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
                subscribed = new.active >= self.shard.desired
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
            self.manager.feed("rollover_failed", old.conn_id,
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
        self.manager.feed("rollover", new.conn_id, start_ns=old.opened_ns,
                          detail=f"conn {old.conn_id} replaced by conn {new.conn_id} "
                                 f"({new.reason})",
                          stream=",".join(sorted(self.shard.desired)))
        task = asyncio.get_running_loop().create_task(self._retire(old, new.conn_id))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

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
        self.manager.gate.retire(conn.conn_id)

    def _end(self, conn: _Conn, *, planned: bool) -> None:
        """Bookkeeping of a connection that has closed."""
        mgr = self.manager
        if conn.sync is not None:
            conn.sync.cancel()
        mgr.gate.retire(conn.conn_id)
        client = conn.client
        reason = client.close_reason if client is not None else ""
        if planned:
            return  # its replacement already delivers: nothing was lost, no ledger row
        self.backoff.connected_for(time.monotonic() - conn.opened_at)
        self.reconnects += 1
        mgr.feed(conn.end_kind, conn.conn_id, detail=reason, start_ns=conn.opened_ns,
                 stream=",".join(sorted(self.shard.desired)))
        if not any(link.conn is not None and link.conn is not conn and link.conn.open
                   for link in self.shard.links):
            mgr.note_disconnect(conn.conn_id, reason)  # no other copy of these streams

    def _next_delay(self) -> float:
        ceiling = self.backoff.ceiling()
        delay = self.backoff.next_delay()
        self.delays.append((ceiling, delay))
        return delay

    async def _sync_loop(self, conn: _Conn) -> None:
        """Converge one open connection's subscriptions on ``desired``."""
        ids = self.manager.request_ids
        client = conn.client
        assert client is not None
        while True:
            await conn.changed.wait()
            conn.changed.clear()
            desired = self.shard.desired
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
                    client.send_text(msgspec.json.encode(
                        {"method": method, "params": chunk, "id": req_id}).decode())

    def on_reply(self, conn: _Conn, reply: ControlReply) -> None:
        pending = conn.pending.pop(reply.id, None) if isinstance(reply.id, int) else None
        if reply.error is not None:
            self.control_errors += 1
            self.last_error = f"{pending[0] if pending else 'request'} refused: " \
                              f"{reply.error.code} {reply.error.msg}"
            log.warning("shard %d: %s", self.shard.index, self.last_error)
            return
        if pending is None:
            return
        method, names = pending
        self.manager.feed(method.lower(), conn.conn_id, stream=",".join(names))
        if method == "SUBSCRIBE":
            conn.active.update(n for n in names if n in self.shard.desired)
        else:
            conn.active.difference_update(names)
        conn.changed.set()  # desired may have moved while the request was in flight

    def status(self) -> ConnectionStatus:
        now = time.monotonic()
        conn = self.conn
        client = conn.client if conn is not None else None
        cfg = self.manager.cfg
        rollover_in = -1.0
        if self.state == "open" and conn is not None:
            rollover_in = max(0.0, cfg.rollover_after_s * (1.0 - 0.05 * self.slot)
                              - (now - conn.opened_at))
            if conn.planned_at:
                rollover_in = min(rollover_in, max(0.0, conn.planned_at - time.time()))
        return ConnectionStatus(
            conn_id=self.conn_id, shard=self.shard.index, state=self.state,
            streams=len(self.shard.desired), subscribed=len(self.active),
            uptime_s=now - self.connected_at if self.state == "open" else 0.0,
            reconnects=self.reconnects,
            retry_in_s=max(0.0, self.retry_at - now) if self.state == "reconnecting" else 0.0,
            last_error=self.last_error, stale_replacements=self.stale_replacements,
            server_shutdowns=self.server_shutdowns, control_errors=self.control_errors,
            last_rx_age_s=now - client.last_rx if client is not None else 0.0,
            link=self.slot, rollovers=self.rollovers,
            rollover_failures=self.rollover_failures, rollover_in_s=rollover_in,
            rolling_over=self.spare is not None)


def _next_daily(hhmm: str, now: float, offset_s: float = 0.0) -> float:
    """Epoch seconds of the next ``HH:MM`` UTC (+ ``offset_s``) after ``now``; 0: off."""
    parsed = parse_hhmm(hhmm) if hhmm else None
    if parsed is None:
        return 0.0
    today = datetime.fromtimestamp(now, UTC).replace(hour=parsed[0], minute=parsed[1],
                                                     second=0, microsecond=0)
    at = today.timestamp() + offset_s
    return at if at > now else (today + timedelta(days=1)).timestamp() + offset_s


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
