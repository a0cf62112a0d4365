"""One interface for what feeds the bus: the live feed or a recording.

The engine façade (``engine.engine``) owns the bus, the subscription and the market
view, and hands them to its source as a :class:`Wiring`; the source subscribes its own
consumers, listens to the subscription, and reports its status. The two sources are
:class:`engine.source.live.LiveFeed` (WebSocket + REST, with books, recorder and backfill) and
:class:`engine.source.replay.Replay` (a recording, paced). The façade never asks which
one it has: what only the live feed can do (record, poll, add a symbol, load candle
history) has a do-nothing default here, which a replay keeps.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.book.local_book import LocalBook
    from engine.bus import Bus
    from engine.config import Settings
    from engine.status import Rates, SourceReport
    from engine.subscription import Subscription
    from engine.view.market import MarketState


@dataclass(frozen=True)
class Wiring:
    """What the engine plugs a source into."""

    settings: Settings
    bus: Bus
    subscription: Subscription
    market: MarketState


class Source(ABC):
    def __init__(self) -> None:
        self.ended = asyncio.Event()  # set when the source has nothing more to give

    # -- lifecycle (the engine calls these in this order) ----------------------------------

    async def prepare(self) -> None:
        """Before the bus starts its consumers (e.g. crash recovery of the recording)."""
        return

    @abstractmethod
    async def start(self) -> None:
        """Start producing events into the bus."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop producing; what the bus holds is still delivered (the bus drains next)."""

    async def close(self) -> None:
        """After the bus drained: finish files, close sessions."""
        return

    # -- status ----------------------------------------------------------------------------

    @abstractmethod
    def counts(self) -> Mapping[str, int]:
        """Messages so far per stream name (the engine samples rates from these)."""

    @abstractmethod
    def report(self, rates: Rates) -> SourceReport:
        """What this source knows for the status snapshot."""

    # -- what only some sources can do -----------------------------------------------------

    @property
    def books(self) -> Mapping[str, LocalBook]:
        """Local order books kept from diff depth (none without a live feed)."""
        return {}

    @property
    def recording(self) -> bool:
        return False

    async def set_recording(self, on: bool) -> None:
        """Start or stop recording (a source that cannot record ignores it)."""
        return

    def set_polling(self, on: bool) -> None:
        """REST snapshot polling on/off (a source without REST ignores it)."""
        return

    async def add_symbol(self, symbol: str) -> str:
        """Stream another symbol; "" on success, else why not."""
        return f"{symbol}: this source has the symbols it has"

    async def load_history(self, interval: str, limit: int) -> int:
        """Fill the chart's candles at ``interval``; returns the bars loaded."""
        return 0


SourceFactory = Callable[[Wiring], Source]
