"""Replay a recording: its events back onto the bus, paced by their receive times.

:class:`Replay` is the second :class:`~engine.source.base.Source` (the first is the live
feed): it publishes into the same bus, so every consumer, the TUI and headless mode run
unchanged on recorded data. Events come in the recorded receive order, paced by their
``recv_time`` gaps divided by ``speed`` (0 = as fast as possible). Nothing is recorded
again; stream toggles mute a kind.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.binance.streams import PARTIAL_DEPTH_LEVELS
from engine.events import Event, Kline, LedgerEntry, PartialDepth
from engine.source.base import Source, SourceFactory, Wiring
from engine.status import Rates, ReplayProgress, SourceReport, StreamStatus
from engine.storage.reader import read_events
from engine.subscription import Change
from engine.tasks import TaskSet

BATCH = 256  # events per publish_many and between yields to the loop


def stream_label(event: Event) -> str:
    """The live stream name an event would have come on (for per-stream status rows)."""
    sym = getattr(event, "symbol", "").lower()
    if isinstance(event, Kline):
        return f"{sym}@kline_{event.bar.interval}"
    if isinstance(event, LedgerEntry):
        return f"{sym or '!'}@ledger"
    if isinstance(event, PartialDepth):
        n = len(event.bids)
        return f"{sym}@depth{next((lv for lv in PARTIAL_DEPTH_LEVELS if lv >= n), n)}"
    if event.kind == "depthUpdate":
        return f"{sym}@depth"
    return f"{sym}@{event.kind}"


@dataclass(slots=True)
class StreamCount:
    kind: str
    symbol: str
    messages: int = 0
    last_recv_ns: int = 0


class Replay(Source):
    """Publishes a recording into the engine's bus, paced by recv_time deltas / ``speed``.

    ``speed`` 0 or ``inf`` is as fast as possible (batches of :data:`BATCH`, yielding to
    the loop between them so consumers and UIs keep running). Loading happens in a worker
    thread so a large recording does not freeze a UI. ``ended`` is set when the last
    event is published (``finished``), on error (kept in ``error``) and on stop.
    """

    def __init__(self, wiring: Wiring, root: str | Path, speed: float = 1.0,
                 start_ns: int | None = None, end_ns: int | None = None,
                 kinds: Iterable[str] | None = None,
                 symbols: Iterable[str] | None = None) -> None:
        super().__init__()
        if speed < 0 or math.isnan(speed):
            raise ValueError("speed must be >= 0 (0 or inf = as fast as possible)")
        self.root = Path(root)
        self.bus = wiring.bus
        self.subscription = wiring.subscription
        self.speed = speed
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.kinds = None if kinds is None else tuple(kinds)
        self.symbols = None if symbols is None else tuple(symbols)
        self.published = 0
        self.skipped = 0  # events of muted kinds (TUI toggles), not published
        self.total = 0
        self.position_ns = 0  # recv_time of the last event handled
        self.first_ns = 0
        self.last_ns = 0
        self.error: BaseException | None = None
        self.finished = False  # every event handled (not stopped early, no error)
        self.muted: set[str] = set()
        self.streams: dict[str, StreamCount] = {}
        self._labels: dict[tuple[type, str], StreamCount] = {}
        self._tasks = TaskSet("replay")
        # a recording has every kind it has: all on, and toggles mute a kind
        self.subscription.listen(self.on_change)
        self.subscription.enable_all()

    @classmethod
    def factory(cls, root: str | Path, speed: float = 1.0, start_ns: int | None = None,
                end_ns: int | None = None, kinds: Iterable[str] | None = None,
                symbols: Iterable[str] | None = None) -> SourceFactory:
        """What ``Engine(settings, source=...)`` takes to play ``root``."""
        return functools.partial(cls, root=root, speed=speed, start_ns=start_ns,
                                 end_ns=end_ns, kinds=kinds, symbols=symbols)

    @property
    def fast(self) -> bool:
        return self.speed == 0 or math.isinf(self.speed)

    def on_change(self, change: Change) -> None:
        """Subscription listener: a kind switched off is muted, on again unmuted."""
        if change.kind:
            self.mute(change.kind, not self.subscription.on(change.kind))

    def mute(self, kind: str, muted: bool = True) -> None:
        """Skip (or again publish) one event kind from now on."""
        if muted:
            self.muted.add(kind)
        else:
            self.muted.discard(kind)

    async def start(self) -> None:
        self._tasks.spawn(self._run(), name="replay")

    async def stop(self) -> None:
        await self._tasks.close()
        self.ended.set()

    async def _run(self) -> None:
        try:
            events = await asyncio.to_thread(read_events, self.root, self.start_ns,
                                             self.end_ns, self.kinds, self.symbols)
            self.total = len(events)
            if events:
                self.first_ns, self.last_ns = events[0].recv_ns, events[-1].recv_ns
                await self._play(events)
            self.finished = True
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported through .error, not lost in a task
            self.error = exc
        finally:
            self.ended.set()

    async def _play(self, events: list[Event]) -> None:
        n = len(events)
        if self.fast:
            for i in range(0, n, BATCH):
                self._publish(events[i:i + BATCH])
                await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        recv = [e.recv_ns for e in events]
        t0, ns0, per_ns = loop.time(), recv[0], 1e-9 / self.speed
        i = 0
        while i < n:
            ahead = t0 + (recv[i] - ns0) * per_ns - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
            horizon = ns0 + (loop.time() - t0) / per_ns  # everything due by now, batched
            j = max(i + 1, bisect.bisect_right(recv, horizon, i, min(n, i + BATCH)))
            self._publish(events[i:j])
            full, i = j - i >= BATCH, j
            if full:
                await asyncio.sleep(0)

    def _publish(self, batch: list[Event]) -> None:
        if self.muted:
            kept = [e for e in batch if e.kind not in self.muted]
            self.skipped += len(batch) - len(kept)
        else:
            kept = batch
        labels = self._labels
        for e in kept:
            key = (type(e), getattr(e, "symbol", ""))
            count = labels.get(key)
            if count is None:
                count = labels[key] = self.streams.setdefault(
                    stream_label(e), StreamCount(e.kind, key[1]))
            count.messages += 1
            count.last_recv_ns = e.recv_ns
        self.bus.publish_many(kept)
        self.published += len(kept)
        self.position_ns = batch[-1].recv_ns

    def progress(self) -> ReplayProgress:
        return ReplayProgress(self.published, self.total, self.position_ns)

    # -- status ----------------------------------------------------------------------------

    def counts(self) -> Mapping[str, int]:
        return {name: c.messages for name, c in self.streams.items()}

    def report(self, rates: Rates) -> SourceReport:
        """One row per recorded stream; ages in recorded time."""
        pos = self.position_ns
        streams = [StreamStatus(name=n, kind=c.kind, symbol=c.symbol,
                                enabled=self.subscription.enabled.get(c.kind, True),
                                messages=c.messages, rate=rates.get(n),
                                last_age_s=(pos - c.last_recv_ns) / 1e9)
                   for n, c in sorted(self.streams.items())]
        return SourceReport(streams=streams, replay=self.progress())
