"""The live feed: Binance's WebSocket streams and REST, and everything that keeps them whole.

The first :class:`~engine.source.base.Source`. It builds the receive path (socket → frames →
decode → id gate → bus, ``engine.feed``), the one REST client with its weight budget and
clock sync (``engine.rest``), the local order books (``engine.book``), the recorder
(``engine.storage``), the gap backfill (``engine.gapfill``) and the health monitor
(``engine.view.health``), subscribes each of them to the bus and to the subscription,
and starts and stops them in the order that loses nothing: the recorder first and last.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping

from engine.binance.streams import parse_stream_name
from engine.book.keeper import BookKeeper
from engine.book.local_book import LocalBook
from engine.clock import ExchangeClock
from engine.errors import RestError, UnknownSymbols
from engine.events import AggTrade, Trade
from engine.feed.decode import FrameDecoder
from engine.feed.gate import IdGate
from engine.feed.manager import StreamManager
from engine.feed.receiver import Receiver
from engine.gapfill.backfiller import Backfiller
from engine.gapfill.seed import seed_gate
from engine.rest.budget import WeightBudget
from engine.rest.client import RestClient
from engine.rest.clock_sync import ClockSync
from engine.rest.exchange_info import ExchangeInfoLoader, fetch_exchange_info
from engine.rest.poller import SnapshotPoller
from engine.retry import Backoff
from engine.source.base import Source, Wiring
from engine.status import Rates, SourceReport, StreamStatus
from engine.storage.recorder import Recorder, RecorderState
from engine.tasks import TaskSet, cancel_and_wait
from engine.view.health import HealthMonitor
from engine.view.history import CandleHistory

INFO_RETRY_S = (1.0, 60.0)  # exchangeInfo while offline: the one retry policy, 1 s .. 60 s
SEED_TIMEOUT_S = 5.0


class LiveFeed(Source):
    def __init__(self, wiring: Wiring) -> None:
        super().__init__()
        settings = self.settings = wiring.settings
        bus = self.bus = wiring.bus
        sub = self.subscription = wiring.subscription
        conn = settings.connection
        self.exchange_clock = ExchangeClock()
        self.rest = RestClient(conn.rest_url, conn.connect_timeout_s,
                               WeightBudget(clock=self.exchange_clock))
        self.clock_sync = ClockSync(self.rest, conn.clock_sync_interval_s,
                                    exchange=self.exchange_clock)
        # the receive path: socket → frames → decode → id gate → bus
        self.decoder = FrameDecoder()
        self.gate = IdGate()
        self.receiver = Receiver(self.decoder, self.gate, bus)
        self.manager = StreamManager(conn, self.receiver, bus.publish)
        # consumers of the live feed
        self.book_keeper = BookKeeper(sub.symbols, self.rest, bus,
                                      sync_limit=settings.order_book.sync_limit,
                                      speed_ms=settings.streams.depthUpdate.speed_ms)
        self.book_keeper.attach()
        self.manager.disconnect_listeners.append(self.book_keeper.on_disconnect)
        self.health = HealthMonitor()
        self.health.attach(bus)
        self.recorder = Recorder(settings.storage)
        self.recorder.attach(bus)
        if settings.storage.raw:
            self.receiver.raw_tap = self.recorder.on_raw
        self.backfiller: Backfiller | None = None
        if settings.storage.backfill:
            self.backfiller = Backfiller(
                self.rest, bus, self.gate, kline_keys=sub.kline_keys,
                clock=self.exchange_clock,
                backoff_initial_s=conn.backoff_initial_s, backoff_max_s=conn.backoff_max_s)
            self.backfiller.attach()
        # REST beside the feed
        self.poller = SnapshotPoller(settings.order_book, sub, self.rest, bus)
        self.history = CandleHistory(self.rest, wiring.market, sub, self.exchange_clock)
        self.info = ExchangeInfoLoader(self.rest, sub.symbols, Backoff(*INFO_RETRY_S))
        # the subscription: what is wanted now, and who must hear of changes
        for listener in (self.manager.on_change, self.health.on_change,
                         self.book_keeper.on_change):
            sub.listen(listener)
        self._recorder_started = False
        self._history: asyncio.Task[int] | None = None
        self._tasks = TaskSet("live")

    # -- lifecycle -----------------------------------------------------------------------

    async def prepare(self) -> None:
        if self.settings.storage.enabled:
            self._recorder_started = True
            await self.recorder.start(True)
            await self._seed_from_recording()

    async def _seed_from_recording(self) -> None:
        """Restart continuity (kill -9 included): seed the id gate with the last recorded
        ids, so the downtime shows up as a gap (and gets backfilled)."""
        try:
            await seed_gate(self.gate, self.rest, self.recorder.root, self.subscription.symbols,
                            self.backfiller.seed_klines if self.backfiller else None,
                            min(SEED_TIMEOUT_S, self.settings.connection.connect_timeout_s))
        except (OSError, ValueError) as exc:  # an unreadable tail must not stop a start
            if self.backfiller is not None:
                self.backfiller.stats.last_error = f"restart continuity: {exc}"

    async def start(self) -> None:
        names = self.subscription.names()  # what is wanted now (changes arrive as they come)
        self.manager.enable(names)
        self.health.watch(names)
        self.book_keeper.start()
        await self.manager.start()
        self.clock_sync.start()
        if self.settings.order_book.enabled:
            self.poller.start()
        self._tasks.spawn(self.info.run(), name="exchangeInfo")
        self._history = self._tasks.spawn(self.history.load(self.subscription.interval),
                                          name="candle-history")

    async def stop(self) -> None:
        await self._tasks.close()
        await self.poller.stop()
        await self.book_keeper.stop()
        await self.clock_sync.stop()
        await self.manager.stop()
        if self.backfiller is not None:
            await self.backfiller.stop()  # unfinished gaps get a backfill_failed entry

    async def close(self) -> None:
        if self._recorder_started:
            await self.recorder.stop()  # after the bus drained: every row reaches disk
        await self.rest.close()

    # -- what the live feed can do ----------------------------------------------------------

    @property
    def books(self) -> Mapping[str, LocalBook]:
        return self.book_keeper.books

    @property
    def recording(self) -> bool:
        return self._recorder_started and self.recorder.state is RecorderState.RECORDING

    async def set_recording(self, on: bool) -> None:
        """Start or stop recording; after a storage failure, what the recorder missed of
        trade/aggTrade ids (every other consumer had them live) is fetched again."""
        if not self._recorder_started:
            if on:
                self._recorder_started = True
                await self.recorder.start(True)
            return
        was_failed = self.recorder.state is RecorderState.FAILED
        await self.recorder.set_enabled(on)  # no suspension in it: the hwms below are exact
        if on and was_failed and self.backfiller is not None:
            for (kind, symbol), top in self.recorder.written_max.items():
                hwm = self.gate.last_id(Trade if kind == "trade" else AggTrade, symbol)
                if hwm is not None and hwm > top:
                    self.backfiller.refill(kind, symbol, top + 1, hwm,
                                           self.recorder.on_event, "recorder_failed window")

    def set_polling(self, on: bool) -> None:
        if on:
            self.poller.start()
        else:
            self.poller.pause()

    async def add_symbol(self, symbol: str) -> str:
        """Checked against exchangeInfo first (a typo is a message, not an empty panel),
        then subscribed on the open connection(s), then its candle history loaded."""
        try:
            await fetch_exchange_info(self.rest, (symbol,))
        except UnknownSymbols:
            return f"{symbol} is not a Binance spot symbol (exchangeInfo)"
        except RestError as exc:
            return f"could not check {symbol} with exchangeInfo: {exc}"
        self.subscription.add_symbol(symbol)
        await self.history.load(self.subscription.interval, symbols=[symbol])
        return ""

    async def load_history(self, interval: str, limit: int) -> int:
        """The chart's bars at ``interval`` for every subscribed symbol; a newer switch
        supersedes this one (which then returns 0)."""
        await cancel_and_wait(self._history)
        task = self._history = self._tasks.spawn(self.history.load(interval, limit),
                                                 name="candle-history")
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                return 0  # superseded by a newer switch, not a cancellation of ours
            raise

    # -- status ----------------------------------------------------------------------------

    def counts(self) -> Mapping[str, int]:
        return {name: r.messages for name, r in self.decoder.stats.routes.items()}

    def report(self, rates: Rates) -> SourceReport:
        now_ns = time.time_ns()
        subscribed = self.manager.subscribed()
        routes = self.decoder.stats.routes
        offset_ms = self.clock_sync.offset_ms
        mono = time.monotonic()
        streams: list[StreamStatus] = []
        for name in sorted(subscribed | set(routes)):
            route = routes.get(name)
            ref = route.ref if route is not None else parse_stream_name(name)
            health = self.health.report(ref, name in subscribed, offset_ms, now_ns, mono) \
                if ref is not None else None
            streams.append(StreamStatus(
                name=name, kind=ref.kind if ref else "unknown", symbol=ref.symbol if ref else "",
                enabled=name in subscribed, messages=route.messages if route else 0,
                rate=rates.get(name),
                last_age_s=(now_ns - route.last_recv_ns) / 1e9
                if route and route.last_recv_ns else -1.0,
                latency_p50_ms=health.latency_p50_ms if health else None,
                latency_p99_ms=health.latency_p99_ms if health else None,
                stale=health.stale if health else False,
                cadence_ms=health.cadence_ms if health else None))
        stats = self.decoder.stats
        backfill = self.backfiller
        return SourceReport(
            streams=streams, connections=self.manager.status(), frames=stats.frames,
            bad_frames=stats.bad_frames, unknown_frames=stats.unknown_streams,
            sink_errors=self.receiver.errors, rest=self.rest.stats,
            budget=self.rest.budget_status(), snapshots=self.poller.snapshots,
            snapshot_errors=self.poller.errors, polling=self.poller.running,
            recording=self.recorder.status() if self._recorder_started else None,
            gaps=self.gate.gaps, books=self.book_keeper.status(),
            clock=self.clock_sync.status(), symbols_unknown=self.info.unknown,
            exchange_info_error=self.info.error,
            backfill=dataclasses.replace(backfill.stats) if backfill is not None else None,
            history_error=self.history.error)
