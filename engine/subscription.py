"""The one subscription state: which symbols, which stream kinds, which kline interval.

Settings are frozen; what the user toggles at runtime lives here, once. Every component
that depends on it reads it from here (the candle history loops over ``symbols``, the
poller polls them, the backfiller asks ``kline_keys()``), and components that must act
on a change (the stream manager subscribing, the local books, the market view) register
a listener and receive a :class:`Change`. Nothing else keeps its own copy of the
symbols, the enabled kinds or the interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.binance.streams import KLINE_INTERVALS, STREAM_KINDS, stream_name
from engine.config import Streams


@dataclass(frozen=True)
class Change:
    """What one call changed: the stream names to (un)subscribe, and why."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kind: str = ""  # a stream kind switched on or off
    symbol: str = ""  # a symbol added
    old_interval: str = ""  # the kline interval changed from this ...
    interval: str = ""  # ... to this


Listener = Callable[[Change], None]


class Subscription:
    def __init__(self, streams: Streams, symbols: Sequence[str]) -> None:
        self.streams = streams  # per-kind parameters (depth levels and speeds)
        self.symbols: list[str] = list(dict.fromkeys(symbols))
        self.enabled: dict[str, bool] = {k: bool(getattr(streams, k).enabled)
                                         for k in STREAM_KINDS}
        self.interval: str = streams.kline.interval
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        """Call ``listener`` after every change (in registration order)."""
        self._listeners.append(listener)

    def _notify(self, change: Change) -> None:
        for listener in self._listeners:
            listener(change)

    # -- reading ------------------------------------------------------------------------

    def on(self, kind: str) -> bool:
        return self.enabled.get(kind, False)

    def names_for(self, kind: str, symbols: Iterable[str] | None = None, *,
                  interval: str | None = None) -> list[str]:
        """Wire names of one kind for ``symbols`` (default: all) at ``interval``
        (default: the current one)."""
        spec = getattr(self.streams, kind)
        kwargs: dict[str, Any] = {}
        if kind == "kline":
            kwargs["interval"] = interval or self.interval
        elif kind == "depthPartial":
            kwargs.update(levels=spec.levels, speed_ms=spec.speed_ms)
        elif kind == "depthUpdate":
            kwargs["speed_ms"] = spec.speed_ms
        return [stream_name(kind, sym, **kwargs)
                for sym in (self.symbols if symbols is None else symbols)]

    def names(self, symbols: Iterable[str] | None = None) -> list[str]:
        """Wire names of every enabled kind for ``symbols`` (default: all)."""
        syms = list(self.symbols if symbols is None else symbols)
        return [n for kind in STREAM_KINDS if self.enabled[kind]
                for n in self.names_for(kind, syms)]

    def kline_keys(self) -> list[tuple[str, str]]:
        """(symbol, interval) of the klines subscribed now."""
        if not self.enabled["kline"]:
            return []
        return [(sym, self.interval) for sym in self.symbols]

    # -- changing -----------------------------------------------------------------------

    def set_enabled(self, kind: str, on: bool) -> bool:
        """Switch one kind for every symbol; False when it already was so."""
        if kind not in self.enabled:
            raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(STREAM_KINDS)}")
        if self.enabled[kind] == on:
            return False
        names = tuple(self.names_for(kind))
        self.enabled[kind] = on
        self._notify(Change(added=names if on else (), removed=() if on else names, kind=kind))
        return True

    def enable_all(self) -> None:
        """Every kind on (a replay has what it recorded), each change told as usual."""
        for kind in STREAM_KINDS:
            self.set_enabled(kind, True)

    def add_symbol(self, symbol: str) -> bool:
        """Start streaming ``symbol`` (upper-case) too; False when it already is."""
        if symbol in self.symbols:
            return False
        self.symbols.append(symbol)
        self._notify(Change(added=tuple(self.names([symbol])), symbol=symbol))
        return True

    def set_interval(self, interval: str) -> bool:
        """Switch the kline interval; False when it already is ``interval``."""
        if interval not in KLINE_INTERVALS:
            raise ValueError(f"kline interval {interval!r} is not allowed; allowed: "
                             + ", ".join(KLINE_INTERVALS))
        old = self.interval
        if interval == old:
            return False
        self.interval = interval
        moved = self.enabled["kline"]
        self._notify(Change(added=tuple(self.names_for("kline")) if moved else (),
                            removed=tuple(self.names_for("kline", interval=old))
                            if moved else (), old_interval=old,
                            interval=interval))
        return True
