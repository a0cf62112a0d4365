"""Stream manager: keeps every enabled stream subscribed, forever.

Streams are packed onto *shards*, one combined-stream connection each, at most
``max_streams_per_connection`` streams per shard (Binance's 1024). Each shard runs one
task that connects, subscribes, watches and reconnects with the shared backoff policy,
never giving up. Enabling or disabling a stream at runtime sends SUBSCRIBE/UNSUBSCRIBE
on the open connection (paced under Binance's 5 messages/s), never a reconnect.

A connection is treated as dead when nothing at all arrived for ``stale_after_s``: we
ping it after ``idle_ping_after_s`` of silence, so a quiet but healthy connection
answers with a pong while a stalled one stays silent and is replaced.
``serverShutdown`` makes the shard reconnect at once, before the server closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

from engine.backoff import Backoff
from engine.bus import Bus
from engine.config import Connection
from engine.connection import WsClient, open_ws
from engine.decode import FrameDecoder
from engine.models import ControlReply, FeedEvent, ServerShutdown
from engine.tasks import cancel_and_wait

log = logging.getLogger("binance_live.manager")

URL_STREAMS_BUDGET = 2000  # characters of stream names put in the URL; the rest via SUBSCRIBE
PARAMS_PER_REQUEST = 200  # streams per SUBSCRIBE message


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


class Shard:
    """One connection slot and the set of streams it must carry."""

    def __init__(self, manager: StreamManager, index: int) -> None:
        self.manager = manager
        self.index = index
        self.desired: set[str] = set()
        self.active: set[str] = set()
        cfg = manager.cfg
        self.backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s, cfg.backoff_reset_after_s)
        self.delays: deque[tuple[float, float]] = deque(maxlen=256)  # (ceiling, delay) history
        self.client: WsClient | None = None
        self.conn_id = 0
        self.state = "idle"
        self.connected_at = 0.0
        self.retry_at = 0.0
        self.reconnects = 0
        self.connects = 0
        self.stale_replacements = 0
        self.server_shutdowns = 0
        self.control_errors = 0
        self.last_error = ""
        self._changed = asyncio.Event()
        self._shutdown_seen = False
        self._end_kind = "disconnect"
        self._pending: dict[int, tuple[str, list[str]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._limiter = RateLimiter(cfg.max_messages_per_s)

    # -- desired-state changes (called by the manager) ---------------------------------

    def add(self, names: Iterable[str]) -> None:
        self.desired.update(names)
        self._changed.set()

    def remove(self, names: Iterable[str]) -> None:
        self.desired.difference_update(names)
        self._changed.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name=f"shard:{self.index}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if self.client is not None:
            self.client.close(1000, why="stopped")
        await cancel_and_wait(task)
        self.state = "stopped"

    # -- the connection loop -----------------------------------------------------------

    async def _run(self) -> None:
        while True:
            while not self.desired:
                self.state = "idle"
                self._changed.clear()
                await self._changed.wait()
            delay = await self._connect_once()
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

    async def _connect_once(self) -> float:
        """Run one connection to its end; return the delay before the next attempt."""
        mgr = self.manager
        in_url: list[str] = []
        budget = URL_STREAMS_BUDGET
        for name in sorted(self.desired):
            budget -= len(name) + 1
            if budget < 0:
                break
            in_url.append(name)
        self.conn_id = next(mgr.conn_ids)
        self.state = "connecting"
        self.connects += 1
        self._shutdown_seen = False
        self._pending.clear()
        try:
            client = await open_ws(self._url(in_url), mgr.make_sink(self),
                                   mgr.cfg.connect_timeout_s)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.last_error = _describe(exc)
            return self._next_delay()
        self.client = client
        self.active = set(in_url)
        self.state = "open"
        self.connected_at = time.monotonic()
        opened_ns = time.time_ns()
        self._end_kind = "disconnect"
        mgr.feed("connect", self, detail=f"{len(in_url)} streams in the URL",
                 stream=",".join(in_url))
        self._changed.set()  # streams beyond the URL budget, or changed meanwhile
        try:
            await self._session(client)
        finally:
            self.client = None
            self.active = set()
            lived = time.monotonic() - self.connected_at
            self.backoff.connected_for(lived)
            self.reconnects += 1
            mgr.feed(self._end_kind, self, detail=client.close_reason, start_ns=opened_ns,
                     stream=",".join(sorted(self.desired)))
            mgr.note_disconnect(self, client.close_reason)
        if self._shutdown_seen:
            return 0.0  # the server asked us to go: reconnect now, no penalty
        self.last_error = client.close_reason
        return self._next_delay()

    def _next_delay(self) -> float:
        ceiling = self.backoff.ceiling()
        delay = self.backoff.next_delay()
        self.delays.append((ceiling, delay))
        return delay

    async def _session(self, client: WsClient) -> None:
        cfg = self.manager.cfg
        tick = max(0.02, min(cfg.idle_ping_after_s, cfg.stale_after_s) / 4)
        sync = asyncio.get_running_loop().create_task(self._sync_loop(client))
        pinged_at = 0.0
        try:
            while not client.closed.done():
                await asyncio.wait((client.closed,), timeout=tick)
                if client.closed.done():
                    break
                if self._shutdown_seen:
                    self.server_shutdowns += 1
                    self._end_kind = "server_shutdown"
                    client.close(1000, why="serverShutdown received")
                    break
                now = time.monotonic()
                silent = now - client.last_rx
                if silent > cfg.stale_after_s:
                    self.stale_replacements += 1
                    self._end_kind = "stale"
                    self.last_error = f"stale: nothing received for {silent:.1f}s"
                    client.abort(self.last_error)
                    break
                if silent > cfg.idle_ping_after_s and now - pinged_at > cfg.idle_ping_after_s \
                        and self._limiter.delay() == 0:
                    self._limiter.note()
                    client.ping()
                    pinged_at = now
        finally:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync

    async def _sync_loop(self, client: WsClient) -> None:
        """Converge the open connection's subscriptions on ``desired``."""
        ids = self.manager.request_ids
        while True:
            await self._changed.wait()
            self._changed.clear()
            in_flight = {n for _, names in self._pending.values() for n in names}
            subscribe = sorted(self.desired - self.active - in_flight)
            unsubscribe = sorted((self.active - self.desired) - in_flight)
            for method, names in (("UNSUBSCRIBE", unsubscribe), ("SUBSCRIBE", subscribe)):
                for i in range(0, len(names), PARAMS_PER_REQUEST):
                    chunk = names[i:i + PARAMS_PER_REQUEST]
                    await self._limiter.acquire()
                    if client.closed.done():
                        return
                    req_id = next(ids)
                    self._pending[req_id] = (method, chunk)
                    client.send_text(msgspec.json.encode(
                        {"method": method, "params": chunk, "id": req_id}).decode())

    def on_reply(self, reply: ControlReply) -> None:
        pending = self._pending.pop(reply.id, None) if isinstance(reply.id, int) else None
        if reply.error is not None:
            self.control_errors += 1
            self.last_error = f"{pending[0] if pending else 'request'} refused: " \
                              f"{reply.error.code} {reply.error.msg}"
            log.warning("shard %d: %s", self.index, self.last_error)
            return
        if pending is None:
            return
        method, names = pending
        self.manager.feed(method.lower(), self, stream=",".join(names))
        if method == "SUBSCRIBE":
            self.active.update(n for n in names if n in self.desired)
        else:
            self.active.difference_update(names)
        self._changed.set()  # desired may have moved while the request was in flight

    def status(self) -> ConnectionStatus:
        now = time.monotonic()
        client = self.client
        return ConnectionStatus(
            conn_id=self.conn_id, shard=self.index, state=self.state,
            streams=len(self.desired), subscribed=len(self.active),
            uptime_s=now - self.connected_at if self.state == "open" else 0.0,
            reconnects=self.reconnects,
            retry_in_s=max(0.0, self.retry_at - now) if self.state == "reconnecting" else 0.0,
            last_error=self.last_error, stale_replacements=self.stale_replacements,
            server_shutdowns=self.server_shutdowns, control_errors=self.control_errors,
            last_rx_age_s=now - client.last_rx if client is not None else 0.0)


class StreamManager:
    """Owns the shards; the engine's only way to the WebSocket side."""

    def __init__(self, cfg: Connection, bus: Bus, decoder: FrameDecoder | None = None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.decoder = decoder or FrameDecoder()
        self.shards: list[Shard] = []
        self.conn_ids = itertools.count(1)
        self.request_ids = itertools.count(1)
        self.sink_errors = 0
        self.disconnect_listeners: list[Callable[[int, str], None]] = []
        self.raw_tap: Callable[[list[bytes], int, int], None] | None = None
        self._running = False

    def make_sink(self, shard: Shard) -> Callable[[list[bytes], int], None]:
        decode = self.decoder.decode
        publish = self.bus.publish_many
        conn_id = shard.conn_id

        def sink(frames: list[bytes], recv_ns: int) -> None:
            if self.raw_tap is not None:
                self.raw_tap(frames, recv_ns, conn_id)
            events: list[object] = []
            for frame in frames:
                try:
                    event = decode(frame, recv_ns, conn_id)
                except Exception:  # noqa: BLE001 - decoder bug: count it, keep the feed
                    self.sink_errors += 1
                    log.exception("decoding failed")
                    continue
                if event is None:
                    continue
                kind = type(event)
                if kind is list:
                    events.extend(event)  # type: ignore[arg-type]
                elif kind is ControlReply:
                    shard.on_reply(event)  # type: ignore[arg-type]
                else:
                    if kind is ServerShutdown:
                        shard._shutdown_seen = True  # noqa: SLF001 - the shard's own flag
                    events.append(event)
            if events:
                try:
                    publish(events)
                except Exception:  # noqa: BLE001 - a bug must not kill the socket
                    self.sink_errors += 1
                    log.exception("publishing failed")

        return sink

    def feed(self, what: str, shard: Shard, *, stream: str = "", detail: str = "",
             start_ns: int = 0) -> None:
        """Publish a ledger entry about a connection (connect, disconnect, stale, ...)."""
        now = time.time_ns()
        self.bus.publish(FeedEvent(what=what, stream=stream, detail=detail[:500],
                                   start_ns=start_ns or now, end_ns=now, recv_ns=now,
                                   conn=shard.conn_id))

    def note_disconnect(self, shard: Shard, reason: str) -> None:
        for listener in self.disconnect_listeners:
            listener(shard.conn_id, reason)

    # -- desired state -------------------------------------------------------------------

    def subscribed(self) -> set[str]:
        return {n for s in self.shards for n in s.desired}

    def enable(self, names: Iterable[str]) -> None:
        wanted = [n for n in dict.fromkeys(names) if n not in self.subscribed()]
        cap = self.cfg.max_streams_per_connection
        for shard in self.shards:
            room = cap - len(shard.desired)
            if room > 0 and wanted:
                shard.add(wanted[:room])
                wanted = wanted[room:]
        while wanted:
            shard = Shard(self, len(self.shards))
            self.shards.append(shard)
            shard.add(wanted[:cap])
            wanted = wanted[cap:]
            if self._running:
                shard.start()

    def disable(self, names: Iterable[str]) -> None:
        gone = set(names)
        for shard in self.shards:
            if shard.desired & gone:
                shard.remove(gone)

    async def start(self) -> None:
        self._running = True
        for shard in self.shards:
            shard.start()

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*(s.stop() for s in self.shards))

    def status(self) -> list[ConnectionStatus]:
        return [s.status() for s in self.shards]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
