"""Id-continuity checks that feed the gap ledger (now done by :mod:`engine.idgate`).

Trade ids, aggregate-trade ids and diff-depth update ids are contiguous on Binance, so
any jump means events were missed (usually across a reconnect). The live engine checks
them in the WebSocket sink with :class:`~engine.idgate.IdGate` (``Engine.continuity``),
which also drops duplicates before the bus. ``ContinuityChecker`` is kept for scripts
that check a stream of events after the fact: it publishes the gate's ``gap`` and
``gap_filled`` FeedEvents and counts duplicates, without filtering anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.idgate import IdGate
from engine.models import AggTrade, DepthUpdate, FeedEvent, Trade


class ContinuityChecker:
    KINDS = (Trade, AggTrade, DepthUpdate)

    def __init__(self, publish: Callable[[FeedEvent], None]) -> None:
        self.publish = publish
        self.gate = IdGate()

    @property
    def gaps(self) -> int:
        return self.gate.gaps

    @property
    def duplicates(self) -> int:
        return self.gate.duplicates

    def on_event(self, event: Any) -> None:
        for out in self.gate.admit(event):
            if type(out) is FeedEvent:
                self.publish(out)
