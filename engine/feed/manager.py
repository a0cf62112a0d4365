"""Stream manager: keeps every enabled stream subscribed, forever, losing nothing.

Streams are packed onto *shards*, at most ``max_streams_per_connection`` streams per
shard (Binance's 1024). Each shard has ``connection.redundancy`` *links* (1 or 2): a link
is one combined-stream connection slot with its own task that connects, subscribes,
watches and reconnects with the one retry policy, never giving up. Enabling or
disabling a stream at runtime sends SUBSCRIBE/UNSUBSCRIBE on the open connections (paced
under Binance's 5 messages/s per connection), never a reconnect.

Every connection delivers into one shared :class:`~engine.feed.receiver.Receiver`, whose
id gate passes each event once: first arrival wins, duplicates are dropped, id gaps
become ledger entries. That is what makes overlapping connections safe:

* **rollover** (make-before-break): before Binance's 24 h close and at once on
  ``serverShutdown``, a link opens a replacement with the same streams and closes the
  old connection (1000) only after the replacement delivered market data, plus a short
  overlap. A failed replacement keeps the old connection and is retried with backoff.
* **redundancy 2**: two links carry the same streams; one dropping loses nothing while
  the other lives.

A connection is treated as dead when nothing at all arrived for ``stale_after_s``: we
ping it after ``idle_ping_after_s`` of silence, so a quiet but healthy connection
answers with a pong while a stalled one stays silent and is replaced.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable

from engine.config import Connection
from engine.events import Event
from engine.feed.link import ConnectionStatus, Link, LinkContext
from engine.feed.receiver import Receiver
from engine.subscription import Change

__all__ = ["ConnectionStatus", "Shard", "StreamManager"]


class Shard:
    """A set of streams (at most ``max_streams_per_connection``) and the links carrying
    it: ``connection.redundancy`` independent connections with the same streams."""

    def __init__(self, ctx: LinkContext, index: int,
                 lost: Callable[[int, str], None]) -> None:
        self.index = index
        self.desired: set[str] = set()
        self._lost = lost
        self.links = [Link(ctx, self.desired, index, slot, self._link_ended)
                      for slot in range(ctx.cfg.redundancy)]

    def _link_ended(self, link: Link, conn_id: int, reason: str) -> None:
        if not any(other.open for other in self.links if other is not link):
            self._lost(conn_id, reason)  # no other copy of these streams is open

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

    @property
    def primary(self) -> Link:
        """The first link (the only one unless ``redundancy`` is 2)."""
        return self.links[0]

    @property
    def reconnects(self) -> int:
        return sum(link.reconnects for link in self.links)

    @property
    def rollovers(self) -> int:
        return sum(link.rollovers for link in self.links)

    def statuses(self) -> list[ConnectionStatus]:
        return [link.status() for link in self.links]


class StreamManager:
    """Owns the shards; the engine's only way to the WebSocket side."""

    def __init__(self, cfg: Connection, receiver: Receiver,
                 publish: Callable[[Event], None]) -> None:
        self.context = LinkContext(cfg=cfg, receiver=receiver, publish=publish,
                                   retire=receiver.gate.retire,
                                   conn_ids=itertools.count(1),
                                   request_ids=itertools.count(1))
        self.shards: list[Shard] = []
        self.disconnect_listeners: list[Callable[[int, str], None]] = []
        self._running = False

    @property
    def cfg(self) -> Connection:
        return self.context.cfg

    def _lost(self, conn_id: int, reason: str) -> None:
        """A connection ended and no other connection carries its streams."""
        for listener in self.disconnect_listeners:
            listener(conn_id, reason)

    # -- desired state -------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        """Subscription listener: (un)subscribe what changed."""
        if change.removed:
            self.disable(change.removed)
        if change.added:
            self.enable(change.added)

    def subscribed(self) -> set[str]:
        return {n for s in self.shards for n in s.desired}

    def enable(self, names: Iterable[str]) -> None:
        have = self.subscribed()
        wanted = [n for n in dict.fromkeys(names) if n not in have]
        cap = self.cfg.max_streams_per_connection
        for shard in self.shards:
            room = cap - len(shard.desired)
            if room > 0 and wanted:
                shard.add(wanted[:room])
                wanted = wanted[room:]
        while wanted:
            shard = Shard(self.context, len(self.shards), self._lost)
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
