"""The engine façade: the one object a UI, the headless runner or a script talks to.

It owns the bus, the one subscription state and the market view, and plugs a source
into them: the live feed (``engine.source.live``, the default) or a recording
(``engine.source.replay``). It offers the runtime controls (streams, symbols, interval,
recording, polling) and a status snapshot that UIs *pull* on their own timer
(``engine.status``). Nothing here pushes to a UI, imports one, or asks which source it
has.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from engine.bus import Bus
from engine.config import Settings
from engine.source.base import Source, SourceFactory, Wiring
from engine.status import EngineStatus, Rates, assemble
from engine.subscription import Subscription
from engine.tasks import TaskSet
from engine.view.history import LIMIT
from engine.view.market import MarketState

if TYPE_CHECKING:
    from engine.book.local_book import LocalBook
    from engine.source.live import LiveFeed


def _live(wiring: Wiring) -> Source:
    from engine.source.live import LiveFeed  # imported when used: a replay never loads REST

    return LiveFeed(wiring)


class Engine:
    def __init__(self, settings: Settings, bus: Bus | None = None,
                 source: SourceFactory | None = None) -> None:
        """``source``: what feeds the bus (default: the live feed; for a recording,
        ``Replay.factory(root, speed)`` from ``engine.source.replay``)."""
        self.settings = settings
        self.bus = bus or Bus()
        self.subscription = Subscription(settings.streams, settings.symbols)
        self.market = MarketState(self.subscription)
        self.market.attach(self.bus)
        self.source: Source = (source or _live)(
            Wiring(settings, self.bus, self.subscription, self.market))
        self.rates = Rates(self.source.counts)
        self._tasks = TaskSet("engine")
        self._started_at = 0.0

    @property
    def live(self) -> LiveFeed:
        """The live feed's parts (manager, rest, recorder, …), for tools and tests."""
        from engine.source.live import LiveFeed

        if not isinstance(self.source, LiveFeed):
            raise TypeError(f"this engine plays a {type(self.source).__name__}, not the "
                            "live feed")
        return self.source

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.source.prepare()
        self.bus.start()
        await self.source.start()
        self._started_at = time.monotonic()
        self.rates.begin()
        self._tasks.spawn(self.rates.run(), name="rates")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop receiving, let every consumer drain what it holds, then close the source."""
        await self._tasks.close()
        await self.source.stop()
        await self.bus.stop(drain_timeout)
        await self.source.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the subscription ---------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        return self.subscription.symbols

    @property
    def enabled(self) -> dict[str, bool]:
        return self.subscription.enabled

    @property
    def kline_interval(self) -> str:
        return self.subscription.interval

    def set_stream(self, kind: str, enabled: bool) -> None:
        """Subscribe or unsubscribe one stream kind for every symbol, on the open socket."""
        self.subscription.set_enabled(kind, enabled)

    def toggle_stream(self, kind: str) -> bool:
        self.set_stream(kind, not self.subscription.on(kind))
        return self.subscription.on(kind)

    async def add_symbol(self, symbol: str) -> str:
        """Start streaming another symbol at runtime; "" on success, else why not."""
        symbol = symbol.upper()
        if symbol in self.subscription.symbols:
            return ""
        return await self.source.add_symbol(symbol)

    async def set_kline_interval(self, interval: str, limit: int = LIMIT) -> int:
        """Switch the candles to ``interval`` on the open socket and load their history.

        UNSUBSCRIBEs the old ``kline_<i>`` streams and SUBSCRIBEs the new ones (no
        reconnect; only while klines are enabled), then loads the last ``limit`` bars of
        every symbol so the chart is full at once. Returns the bars loaded.
        """
        if not self.subscription.set_interval(interval):
            return 0
        return await self.source.load_history(interval, limit)

    # -- recording, polling, books ------------------------------------------------------

    @property
    def recording(self) -> bool:
        return self.source.recording

    async def set_recording(self, on: bool) -> None:
        """Start or stop recording at runtime; stopping finishes the open files."""
        await self.source.set_recording(on)

    def set_polling(self, enabled: bool) -> None:
        self.source.set_polling(enabled)

    @property
    def books(self) -> Mapping[str, LocalBook]:
        """The local order book of each symbol (kept only while diff depth is on)."""
        return self.source.books

    # -- status (pulled by UIs) ---------------------------------------------------------

    def sample_rates(self) -> None:
        self.rates.sample()

    def status(self) -> EngineStatus:
        uptime = time.monotonic() - self._started_at if self._started_at else 0.0
        return assemble(self.source.report(self.rates), bus=self.bus,
                        subscription=self.subscription, uptime_s=uptime)
