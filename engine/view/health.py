"""Per-stream feed health: exchange→local latency and silence (stale) detection.

Why this shape: it runs as an *inline* bus consumer, on the receive path, so the
per-message work is two ring appends (the inter-arrival gap and the raw
``recv − E``). Everything costly — sorting for percentiles, the clock-offset
correction, the stale verdict — happens only when a UI pulls the status, and the
percentiles are cached briefly so a 15 Hz UI does not sort every frame.

Latency = local receive − (E − offset), where offset = exchange clock − local clock
(:mod:`engine.rest.clock_sync`): E − offset is the event time on our clock. The raw
``recv − E`` is stored uncorrected and the *current* offset is added on pull, so samples
received before the first clock sync are corrected too, and a re-sync re-corrects the
whole window (drift between syncs is negligible).

A stream is ``stale`` when it has been silent for more than ``STALE_FACTOR`` × its
expected cadence (never less than ``STALE_FLOOR_S``). Periodic streams have a known
cadence; event-driven ones (trade, aggTrade, bookTicker) learn it from a high
percentile of their own recent gaps. This is a display-level verdict: replacing a
dead *connection* stays the stream manager's job (``connection.stale_after_s``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.binance.streams import StreamRef
from engine.bus import Bus, Mode
from engine.events import (
    EVENT_TYPES_BY_KIND,
    AggTrade,
    BookTicker,
    DepthUpdate,
    Event,
    Kline,
    MiniTicker,
    PartialDepth,
    Trade,
)
from engine.subscription import Change

LATENCY_WINDOW = 2048  # latency samples kept per stream
GAP_WINDOW = 512  # inter-arrival gaps kept per stream
MIN_GAPS = 20  # an event-driven stream is judged only once it has shown its rhythm
GAP_PERCENTILE = 0.99
STALE_FACTOR = 5.0
STALE_FLOOR_S = 2.0
CACHE_S = 0.25  # percentiles are recomputed at most this often per stream


def expected_cadence_ms(ref: StreamRef) -> float | None:
    """Binance's publishing period of a stream; None for event-driven streams."""
    if ref.kind in ("depthUpdate", "depthPartial"):
        return float(ref.speed_ms or 1000)
    if ref.kind == "kline":
        return 1000.0 if ref.param == "1s" else 2000.0
    if ref.kind in ("miniTicker", "ticker", "avgPrice"):
        return 1000.0
    return None


def percentile(ordered: list[int] | list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    n = len(ordered)
    return float(ordered[min(n - 1, max(0, int(q * n + 0.999999) - 1))])


def stale_after_s(cadence_ms: float, factor: float = STALE_FACTOR,
                  floor_s: float = STALE_FLOOR_S) -> float:
    return max(factor * cadence_ms / 1000.0, floor_s)


class _Track:
    """The rings of one stream (keyed by event type and symbol)."""

    __slots__ = ("cached_at", "gaps", "last_ns", "lat", "learned_ms", "p50", "p99", "timed")

    def __init__(self, typ: type, window: int, gap_window: int) -> None:
        self.timed = "event_time" in getattr(typ, "__struct_fields__", ())
        self.lat: deque[int] = deque(maxlen=window)  # ns: recv_ns − E·10⁶ (uncorrected)
        self.gaps: deque[int] = deque(maxlen=gap_window)  # ns between receives
        self.last_ns = 0
        self.cached_at = -1e9
        self.p50: float | None = None
        self.p99: float | None = None
        self.learned_ms: float | None = None

    def refresh(self) -> None:
        lat = sorted(self.lat)
        self.p50 = percentile(lat, 0.5) / 1e6 if lat else None
        self.p99 = percentile(lat, 0.99) / 1e6 if lat else None
        gaps = sorted(self.gaps)
        self.learned_ms = percentile(gaps, GAP_PERCENTILE) / 1e6 \
            if len(gaps) >= MIN_GAPS else None


@dataclass(frozen=True, slots=True)
class HealthReport:
    latency_p50_ms: float | None  # None: the stream has no event time (bookTicker, depthN)
    latency_p99_ms: float | None
    cadence_ms: float | None  # expected or learned period; None while still unknown
    stale: bool
    silent_s: float  # since the last message (or since the stream was enabled)


_BACKFILLABLE = frozenset((Trade, AggTrade, Kline))  # the types with a `backfilled` flag


class HealthMonitor:
    """Feed it every stream event inline (:meth:`on_event`); pull :meth:`report` per stream."""

    KINDS: tuple[type[Event], ...] = (Trade, AggTrade, Kline, BookTicker, PartialDepth,
                                      DepthUpdate, MiniTicker)

    def __init__(self, window: int = LATENCY_WINDOW, gap_window: int = GAP_WINDOW,
                 stale_factor: float = STALE_FACTOR, stale_floor_s: float = STALE_FLOOR_S) -> None:
        self.window = window
        self.gap_window = gap_window
        self.stale_factor = stale_factor
        self.stale_floor_s = stale_floor_s
        self._tracks: dict[tuple[type, str], _Track] = {}
        self._since: dict[str, int] = {}  # stream name → wall ns it was (re)enabled

    def attach(self, bus: Bus) -> None:
        bus.subscribe(self.on_event, kinds=self.KINDS, name="health", mode=Mode.INLINE)

    def on_change(self, change: Change) -> None:
        """Subscription listener: streams just subscribed start their silence clock."""
        if change.added:
            self.watch(change.added)

    # -- receive path (inline consumer) -----------------------------------------------

    def on_event(self, event: Any) -> None:
        key = (type(event), event.symbol)
        if key[0] in _BACKFILLABLE and event.backfilled:
            return  # fetched from REST later: says nothing about the live feed's health
        track = self._tracks.get(key)
        if track is None:
            track = self._tracks[key] = _Track(key[0], self.window, self.gap_window)
        recv = event.recv_ns
        if track.last_ns:
            track.gaps.append(recv - track.last_ns)
        track.last_ns = recv
        if track.timed:
            e = event.event_time
            if e:  # spot bookTicker carries none (0)
                track.lat.append(recv - e * 1_000_000)

    # -- control --------------------------------------------------------------------

    def watch(self, names: Iterable[str], now_ns: int | None = None) -> None:
        """Start the silence clock of streams just (re)enabled, so an old last message
        does not make a freshly re-subscribed stream look stale."""
        now = time.time_ns() if now_ns is None else now_ns
        for name in names:
            self._since[name] = now

    # -- pull side ------------------------------------------------------------------

    def report(self, ref: StreamRef, enabled: bool, offset_ms: float = 0.0,
               now_ns: int | None = None, mono: float | None = None) -> HealthReport:
        """Latency percentiles (corrected by ``offset_ms`` = exchange − local clock) and
        the stale verdict of one stream."""
        now = time.time_ns() if now_ns is None else now_ns
        typ = EVENT_TYPES_BY_KIND.get(ref.kind)
        track = self._tracks.get((typ, ref.symbol)) if typ is not None else None
        p50 = p99 = learned = None
        last = 0
        if track is not None:
            t = time.monotonic() if mono is None else mono
            if t - track.cached_at >= CACHE_S:
                track.refresh()
                track.cached_at = t
            p50 = None if track.p50 is None else track.p50 + offset_ms
            p99 = None if track.p99 is None else track.p99 + offset_ms
            learned, last = track.learned_ms, track.last_ns
        cadence = expected_cadence_ms(ref)
        if cadence is None:
            cadence = learned
        since = max(last, self._since.get(ref.name, 0))
        silent = (now - since) / 1e9 if since else -1.0
        stale = (enabled and cadence is not None and since > 0
                 and silent > stale_after_s(cadence, self.stale_factor, self.stale_floor_s))
        return HealthReport(p50, p99, cadence, stale, silent)
