"""Stream manager: keeps every enabled stream subscribed, forever, losing nothing.

Streams are packed onto *shards*, at most ``max_streams_per_connection`` streams per
shard (Binance's 1024). Each shard has ``connection.redundancy`` *links* (1 or 2): a link
is one combined-stream connection slot with its own task that connects, subscribes,
watches and reconnects with the shared backoff policy, never giving up. Enabling or
disabling a stream at runtime sends SUBSCRIBE/UNSUBSCRIBE on the open connections (paced
under Binance's 5 messages/s per connection), never a reconnect.

Every decoded market event of every connection passes one shared :class:`IdGate` before
the bus: first arrival wins, duplicates are dropped, id gaps become ledger rows. That is
what makes overlapping connections safe:

* **rollover** (make-before-break): before Binance's 24 h close (``rollover_after_s``,
  optionally daily at ``rollover_at``) and at once on ``serverShutdown``, a link opens a
  replacement with the same streams, and closes the old connection (1000) only after the
  replacement delivered market data, plus a short overlap. A failed replacement keeps
  the old connection and is retried with the link's backoff.
* **redundancy 2**: two links carry the same streams; one dropping loses nothing while
  the other lives.

A connection is treated as dead when nothing at all arrived for ``stale_after_s``: we
ping it after ``idle_ping_after_s`` of silence, so a quiet but healthy connection
answers with a pong while a stalled one stays silent and is replaced.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from engine.bus import Bus
from engine.config.settings import Connection
from engine.feed.websocket import WsClient
from engine.feed.decode import FrameDecoder
from engine.feed.gate import IdGate
from engine.feed.link import ConnectionStatus, Link, RateLimiter, _Conn
from engine.events import ControlReply, FeedEvent

log = logging.getLogger("binance_live.manager")

__all__ = ["ConnectionStatus", "RateLimiter", "Shard", "StreamManager"]


class Shard:
    """A set of streams (at most ``max_streams_per_connection``) and the links carrying
    it: ``connection.redundancy`` independent connections with the same streams."""

    def __init__(self, manager: StreamManager, index: int) -> None:
        self.manager = manager
        self.index = index
        self.desired: set[str] = set()
        self.links = [Link(self, slot) for slot in range(manager.cfg.redundancy)]

    # -- desired-state changes (called by the manager) ---------------------------------

    def add(self, names: Iterable[str]) -> None:
        self.desired.update(names)
        for link in self.links:
            link.notify()

    def remove(self, names: Iterable[str]) -> None:
        self.desired.difference_update(names)
        for link in self.links:
            link.notify()

    def start(self) -> None:
        for link in self.links:
            link.start()

    async def stop(self) -> None:
        await asyncio.gather(*(link.stop() for link in self.links))

    # -- the first link's view (one connection per shard unless redundancy is 2) ------

    @property
    def primary(self) -> Link:
        return self.links[0]

    @property
    def conn_id(self) -> int:
        return self.primary.conn_id

    @property
    def state(self) -> str:
        return self.primary.state

    @property
    def client(self) -> WsClient | None:
        return self.primary.client

    @property
    def active(self) -> set[str]:
        return self.primary.active

    @property
    def delays(self) -> deque[tuple[float, float]]:
        return self.primary.delays

    @property
    def last_error(self) -> str:
        return self.primary.last_error

    # -- counters, summed over the links ----------------------------------------------

    @property
    def reconnects(self) -> int:
        return sum(link.reconnects for link in self.links)

    @property
    def connects(self) -> int:
        return sum(link.connects for link in self.links)

    @property
    def stale_replacements(self) -> int:
        return sum(link.stale_replacements for link in self.links)

    @property
    def server_shutdowns(self) -> int:
        return sum(link.server_shutdowns for link in self.links)

    @property
    def control_errors(self) -> int:
        return sum(link.control_errors for link in self.links)

    @property
    def rollovers(self) -> int:
        return sum(link.rollovers for link in self.links)

    def on_reply(self, reply: ControlReply) -> None:  # a sink without a connection (bench)
        return

    def status(self) -> ConnectionStatus:
        return self.primary.status()

    def statuses(self) -> list[ConnectionStatus]:
        return [link.status() for link in self.links]


class StreamManager:
    """Owns the shards; the engine's only way to the WebSocket side."""

    def __init__(self, cfg: Connection, bus: Bus, decoder: FrameDecoder | None = None) -> None:
        self.cfg = cfg
        self.bus = bus
        self.decoder = decoder or FrameDecoder()
        self.shards: list[Shard] = []
        self.conn_ids = itertools.count(1)
        self.request_ids = itertools.count(1)
        self.gate = IdGate()  # shared by every connection: overlaps are de-duplicated
        self.sink_errors = 0
        self.disconnect_listeners: list[Callable[[int, str], None]] = []
        self.raw_tap: Callable[[list[bytes], int, int], None] | None = None
        self._running = False

    def make_sink(self, shard: Shard, conn: _Conn | None = None, link: Link | None = None,
                  ) -> Callable[[list[bytes], int], None]:
        """The receive path of one connection: decode, gate, publish (one batch per read)."""
        decode = self.decoder.decode_batch
        publish = self.bus.publish_many
        gate = self.gate.filter
        if conn is None:  # a bare sink (benchmarks): no connection behind it
            conn = _Conn(shard.conn_id, self.cfg.max_messages_per_s)
        conn_id = conn.conn_id
        on_reply = shard.on_reply if link is None else \
            (lambda reply: link.on_reply(conn, reply))  # type: ignore[union-attr]

        def sink(frames: list[bytes], recv_ns: int) -> None:
            if self.raw_tap is not None:
                self.raw_tap(frames, recv_ns, conn_id)
            events: list[object] = []
            special: list[object] = []
            try:
                decode(frames, recv_ns, conn_id, events, special)
            except Exception:  # noqa: BLE001 - decoder bug: count it, keep the feed
                self.sink_errors += 1
                log.exception("decoding failed")
            shutdowns = 0
            for event in special:  # rare: control replies and serverShutdown
                if type(event) is ControlReply:
                    on_reply(event)
                    continue
                conn.shutdown_seen = True  # type: ignore[union-attr]
                alert = conn.alert  # type: ignore[union-attr]
                if alert is not None and not alert.done():
                    alert.set_result(None)  # wake the link: roll over now
                shutdowns += 1
            if events:
                if len(events) > shutdowns:
                    conn.data_ns = recv_ns  # type: ignore[union-attr]
                try:
                    out: list[object] = []
                    gate(events, out)
                    if out:
                        publish(out)
                except Exception:  # noqa: BLE001 - a bug must not kill the socket
                    self.sink_errors += 1
                    log.exception("publishing failed")

        return sink

    def feed(self, what: str, conn_id: int, *, stream: str = "", detail: str = "",
             start_ns: int = 0) -> None:
        """Publish a ledger entry about a connection (connect, disconnect, stale,
        rollover, ...)."""
        now = time.time_ns()
        self.bus.publish(FeedEvent(what=what, stream=stream, detail=detail[:500],
                                   start_ns=start_ns or now, end_ns=now, recv_ns=now,
                                   conn=conn_id))

    def note_disconnect(self, conn_id: int, reason: str) -> None:
        """A connection ended and no other connection carries its streams."""
        for listener in self.disconnect_listeners:
            listener(conn_id, reason)

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
        """One row per connection slot (``redundancy`` rows per shard)."""
        return [row for s in self.shards for row in s.statuses()]
