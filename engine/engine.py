"""The engine façade: the one object a UI, the headless runner or a script talks to.

It wires settings → stream manager → decoder → bus (+ REST poller), offers runtime
toggles, and builds a status snapshot that UIs *pull* on their own timer. Nothing here
pushes to a UI, and nothing imports one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
import msgspec

from engine.gapfill.backfiller import Backfiller, BackfillStats, seed_gate
from engine.book.local_book import LocalBook
from engine.book.keeper import BookKeeper, BookStatus
from engine.rest.budget import BudgetStatus
from engine.bus import Bus, ConsumerStats, Mode
from engine.rest.clock_sync import ClockStatus, ClockSync
from engine.config.settings import Settings
from engine.feed.decode import FrameDecoder
from engine.rest.exchange_info import ExchangeInfo, UnknownSymbols, fetch_exchange_info
from engine.view.health import HealthMonitor
from engine.feed.manager import ConnectionStatus, StreamManager
from engine.view.market import MarketState, fetch_klines
from engine.events import AggTrade, Trade
from engine.rest.poller import SnapshotPoller
from engine.storage.recorder import Recorder, RecorderState, RecorderStatus
from engine.rest.client import RestClient, RestError, RestStats
from engine.binance.streams import KLINE_INTERVALS, STREAM_KINDS, parse_stream_name
from engine.tasks import cancel_and_wait

if TYPE_CHECKING:
    from engine.storage.replay import Replayer

RATE_SAMPLE_S = 1.0
RATE_WINDOW = 5  # samples: rates are averaged over the last 5 s (klines arrive every 2 s)


@dataclass(frozen=True)
class StreamStatus:
    name: str
    kind: str
    symbol: str
    enabled: bool
    messages: int
    rate: float  # messages per second, sampled every second
    last_age_s: float  # seconds since the last message; -1 before the first
    latency_p50_ms: float | None = None  # receive − E, clock-offset corrected; None: no E
    latency_p99_ms: float | None = None
    stale: bool = False  # silent well past its expected cadence (engine.health)
    cadence_ms: float | None = None  # expected (or learned) period between messages


@dataclass(frozen=True)
class EngineStatus:
    uptime_s: float
    connections: list[ConnectionStatus]
    streams: list[StreamStatus]
    consumers: list[ConsumerStats]
    frames: int
    bad_frames: int
    unknown_frames: int
    published: int
    sink_errors: int
    rest: RestStats
    budget: BudgetStatus
    snapshots: int
    snapshot_errors: int
    enabled: dict[str, bool] = field(default_factory=dict)
    polling: bool = False
    recording: RecorderStatus | None = None
    gaps: int = 0
    books: list[BookStatus] = field(default_factory=list)  # diff-depth local books
    replay: tuple[int, int, int] | None = None  # (published, total, position_ns)
    clock: ClockStatus | None = None  # exchange clock calibration; None in replay
    symbols_unknown: tuple[str, ...] = ()
    exchange_info_error: str = ""
    backfill: BackfillStats | None = None  # REST gap backfill; None when off or in replay

    @property
    def total_rate(self) -> float:
        return sum(s.rate for s in self.streams)

    @property
    def reconnects(self) -> int:
        return sum(c.reconnects for c in self.connections)


class Engine:
    def __init__(self, settings: Settings, bus: Bus | None = None,
                 replay: Replayer | None = None) -> None:
        """``replay`` plays a recording into the bus instead of connecting (see engine.replay)."""
        self.settings = settings
        self.replay = replay
        self.bus = bus or (replay.bus if replay is not None else Bus())
        self.decoder = FrameDecoder()
        self.manager = StreamManager(settings.connection, self.bus, self.decoder)
        self.rest = RestClient(settings.connection.rest_url,
                               settings.connection.connect_timeout_s)
        self.symbols: list[str] = list(settings.symbols)  # grows with add_symbol()
        self.poller = SnapshotPoller(settings.order_book, settings.symbols, self.rest, self.bus)
        # Local order books from diff depth (live only: a replay has no REST to sync from).
        self.book_keeper: BookKeeper | None = None
        if replay is None:
            self.book_keeper = BookKeeper(settings.symbols, self.rest, self.bus,
                                          sync_limit=settings.order_book.sync_limit,
                                          speed_ms=settings.streams.depthUpdate.speed_ms)
            self.book_keeper.attach()
            self.manager.disconnect_listeners.append(self.book_keeper.on_disconnect)
        self.enabled: dict[str, bool] = {k: replay is not None or settings.stream_enabled(k)
                                         for k in STREAM_KINDS}
        # dedup + id-continuity ledger: runs in the WebSocket sink, before the bus
        self.continuity = self.manager.gate
        self.clock_sync = ClockSync(self.rest, settings.connection.clock_sync_interval_s)
        self.health = HealthMonitor()
        if replay is None:  # a recording carries its own ledger; don't add to it
            self.bus.subscribe(self.health.on_event, kinds=HealthMonitor.KINDS,
                               name="health", mode=Mode.INLINE)
        # What the trading panels draw, pulled by UIs; klines switch at runtime (settings
        # are frozen), so the current interval lives here.
        self.kline_interval = settings.streams.kline.interval
        self.kline_backfill_error = ""
        self._backfill: asyncio.Task[int] | None = None
        self.market = MarketState(settings.symbols, interval=self.kline_interval,
                                  large_notional=settings.ui.large_trade_notional,
                                  large_multiple=settings.ui.large_trade_multiple,
                                  prefer_trade=self.enabled["trade"])
        self.bus.subscribe(self.market.on_event, kinds=MarketState.KINDS, name="market",
                           mode=Mode.INLINE)
        self.recorder = Recorder(settings.storage)
        self.recorder.attach(self.bus)
        self._recorder_started = False
        if settings.storage.raw:
            self.manager.raw_tap = self.recorder.on_raw
        # Gap backfill from REST (live only: a recording carries its own history).
        self.backfiller: Backfiller | None = None
        if replay is None and settings.storage.backfill:
            self.backfiller = Backfiller(
                self.rest, self.bus, kline_keys=self._kline_keys, server_ms=self._server_ms,
                backoff_initial_s=settings.connection.backoff_initial_s,
                backoff_max_s=settings.connection.backoff_max_s, gate=self.manager.gate)
            self.backfiller.attach()
        self._rates: dict[str, float] = {}
        self._samples: deque[tuple[float, dict[str, int]]] = deque(maxlen=RATE_WINDOW + 1)
        self._started_at = 0.0
        self._housekeeping: asyncio.Task[None] | None = None
        self._info_task: asyncio.Task[None] | None = None
        self.exchange_info: ExchangeInfo | None = None
        self.symbols_unknown: tuple[str, ...] = ()
        self.exchange_info_error = ""

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._started_at = time.monotonic()
        self._samples.append((self._started_at, {}))
        if self.replay is not None:  # recorded data instead of connections; never re-recorded
            self.bus.start()
            self.replay.start()
            self._housekeeping = asyncio.get_running_loop().create_task(
                self._sample_rates_forever())
            return
        for kind, on in self.enabled.items():
            if on:
                self.manager.enable(self.names_for(kind))
                self.health.watch(self.names_for(kind))
        if self.settings.storage.enabled:
            await self._start_recorder(True)
            await self._seed_from_recording()
        self.bus.start()
        if self.book_keeper is not None:
            self.book_keeper.start()
        await self.manager.start()
        self.clock_sync.start()
        if self.settings.order_book.enabled:
            self.poller.start()
        loop = asyncio.get_running_loop()
        self._info_task = loop.create_task(self._load_exchange_info(), name="exchangeInfo")
        self._backfill = loop.create_task(self.backfill_klines(self.kline_interval),
                                          name="klines-backfill")
        self._housekeeping = loop.create_task(self._sample_rates_forever())

    async def _load_exchange_info(self) -> None:
        """Adopt Binance's announced weight limit; note symbols it does not know.

        Runs beside the feed (never delays it). Offline, it retries until it succeeds.
        """
        delay = 1.0
        while True:
            try:
                info = await fetch_exchange_info(self.rest, self.settings.symbols)
            except UnknownSymbols as exc:
                self.symbols_unknown = tuple(exc.symbols)
                self.exchange_info_error = f"unknown symbols: {exc}"
                return
            except (RestError, aiohttp.ClientError, TimeoutError,
                    msgspec.DecodeError, msgspec.ValidationError) as exc:
                self.exchange_info_error = f"exchangeInfo: {str(exc)[:150]}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            self.exchange_info = info
            self.exchange_info_error = ""
            if info.weight_limit and info.weight_window_s:
                self.rest.budget.configure(info.weight_limit, info.weight_window_s)
            return

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop receiving, then let every consumer drain what it already holds."""
        await cancel_and_wait(self._housekeeping)
        await cancel_and_wait(self._info_task)
        await cancel_and_wait(self._backfill)
        if self.replay is not None:
            await self.replay.stop()
        await self.poller.stop()
        if self.book_keeper is not None:
            await self.book_keeper.stop()
        await self.clock_sync.stop()
        await self.manager.stop()
        if self.backfiller is not None:
            await self.backfiller.stop()  # unfinished gaps get a backfill_failed row
        await self.bus.stop(drain_timeout)
        if self._recorder_started:
            await self.recorder.stop()  # after the bus: every received row reaches disk
        await self.rest.close()

    @property
    def books(self) -> dict[str, LocalBook]:
        """The local order book of each symbol (kept only while diff depth is on)."""
        return self.book_keeper.books if self.book_keeper is not None else {}

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- runtime control ----------------------------------------------------------------

    def set_stream(self, kind: str, enabled: bool) -> None:
        """Subscribe or unsubscribe one stream kind for every symbol, on the open socket."""
        if kind not in self.enabled:
            raise ValueError(f"unknown stream kind {kind!r}; known: {', '.join(STREAM_KINDS)}")
        self.enabled[kind] = enabled
        if self.replay is not None:
            self.replay.mute(kind, not enabled)
            return
        if kind == "trade":
            self.market.use_trade_stream(enabled)
        names = self.names_for(kind)
        if enabled:
            self.manager.enable(names)
            self.health.watch(names)
        else:
            self.manager.disable(names)
            if kind == "depthUpdate" and self.book_keeper is not None:
                self.book_keeper.suspend()  # no diffs: the books would go silently stale

    def names_for(self, kind: str, symbols: list[str] | None = None) -> list[str]:
        """Wire names of one stream kind for every symbol, at the current kline interval."""
        return self.settings.names_for(kind, symbols or self.symbols,
                                       interval=self.kline_interval)

    async def add_symbol(self, symbol: str) -> str:
        """Start streaming another symbol at runtime; "" on success, else why not.

        The symbol is checked against exchangeInfo first, so a typo is an error message,
        not a silent empty panel; then its enabled streams are SUBSCRIBEd on the open
        connection(s) and its candles backfilled.
        """
        symbol = symbol.upper()
        if symbol in self.symbols:
            return ""
        if self.replay is not None:
            return "a replay has the symbols it recorded"
        try:
            await fetch_exchange_info(self.rest, (symbol,))
        except UnknownSymbols:
            return f"{symbol} is not a Binance spot symbol (exchangeInfo)"
        except (RestError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError,
                msgspec.ValidationError) as exc:
            return f"could not check {symbol} with exchangeInfo: {str(exc)[:120]}"
        self.symbols.append(symbol)
        self.poller.symbols = tuple(self.symbols)
        if self.book_keeper is not None:
            self.book_keeper.add_symbol(symbol)
        for kind, on in self.enabled.items():
            if on:
                names = self.names_for(kind, [symbol])
                self.manager.enable(names)
                self.health.watch(names)
        try:
            bars = await fetch_klines(self.rest, symbol, self.kline_interval, 200,
                                      time.time_ns() // 1_000_000)
            self.market.load_candles(symbol, self.kline_interval, bars)
        except (RestError, aiohttp.ClientError, TimeoutError, msgspec.DecodeError,
                msgspec.ValidationError) as exc:
            self.kline_backfill_error = f"{symbol}: {str(exc)[:120]}"
        return ""

    async def set_kline_interval(self, interval: str, limit: int = 200) -> int:
        """Switch the candles to ``interval`` on the open socket and backfill them.

        UNSUBSCRIBEs the old ``kline_<i>`` streams and SUBSCRIBEs the new ones (no
        reconnect; only while klines are enabled), then loads the last ``limit`` bars of
        every symbol from REST so the chart is full at once; live klines then update the
        last bar. Returns the bars loaded. A REST failure is kept in
        ``kline_backfill_error`` (the live stream still fills the chart).
        """
        if interval not in KLINE_INTERVALS:
            raise ValueError(f"kline interval {interval!r} is not allowed; allowed: "
                             + ", ".join(KLINE_INTERVALS))
        old = self.kline_interval
        if interval == old:
            return 0
        await cancel_and_wait(self._backfill)
        self._backfill = None
        self.kline_interval = interval
        self.market.set_interval(interval)  # before SUBSCRIBE: no live bar is lost
        self.market.drop_interval(old)
        if self.replay is not None:  # a recording has the intervals it has
            return 0
        if self.enabled["kline"]:
            self.manager.disable(self.settings.names_for("kline", interval=old))
            new = self.names_for("kline")
            self.manager.enable(new)
            self.health.watch(new)
        task = self._backfill = asyncio.get_running_loop().create_task(
            self.backfill_klines(interval, limit), name="klines-backfill")
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                return 0  # superseded by a newer switch, not a cancellation of ours
            raise

    async def backfill_klines(self, interval: str, limit: int = 200) -> int:
        """Load the last ``limit`` bars of every symbol into ``market`` (REST, backfill
        priority, symbols concurrently). Returns the bars added; errors are noted, not raised."""
        if self.replay is not None:
            return 0
        now_ms = time.time_ns() // 1_000_000 + int(self.clock_sync.offset_ms or 0)
        results = await asyncio.gather(
            *(fetch_klines(self.rest, sym, interval, limit, now_ms)
              for sym in self.settings.symbols), return_exceptions=True)
        loaded = 0
        errors = []
        for sym, result in zip(self.settings.symbols, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                errors.append(f"{sym}: {str(result)[:100] or type(result).__name__}")
            elif interval == self.kline_interval:
                loaded += self.market.load_candles(sym, interval, result)
        self.kline_backfill_error = "; ".join(errors)
        return loaded

    async def _seed_from_recording(self) -> None:
        """Restart continuity (kill -9 included): seed the id gate with the last recorded
        trade/aggTrade ids, so the downtime shows up as a gap (and gets backfilled)."""
        try:
            await seed_gate(self.continuity, self.backfiller, self.rest, self.recorder.root,
                            self.symbols, min(5.0, self.settings.connection.connect_timeout_s))
        except (OSError, ValueError) as exc:  # an unreadable tail must not stop a start
            self.kline_backfill_error = f"restart continuity: {str(exc)[:150]}"

    def _kline_keys(self) -> list[tuple[str, str]]:
        """(symbol, interval) of the klines subscribed now (for the backfiller)."""
        if not self.enabled["kline"]:
            return []
        return [(sym, self.kline_interval) for sym in self.symbols]

    def _server_ms(self) -> int:
        return time.time_ns() // 1_000_000 + int(self.clock_sync.offset_ms or 0)

    async def _start_recorder(self, enabled: bool) -> None:
        self._recorder_started = True
        await self.recorder.start(enabled)

    async def set_recording(self, on: bool) -> None:
        """Start or stop recording at runtime; stopping finishes the open files."""
        if not self._recorder_started:
            if on:
                await self._start_recorder(True)
            return
        was_failed = self.recorder.state is RecorderState.FAILED
        await self.recorder.set_enabled(on)  # no suspension in it: the hwms below are exact
        if on and was_failed and self.backfiller is not None:
            # every consumer but the recorder had the ids of the failure window live
            for (kind, symbol), top in self.recorder.written_max.items():
                hwm = self.manager.gate.last_id(Trade if kind == "trade" else AggTrade,
                                                symbol)
                if hwm is not None and hwm > top:
                    self.backfiller.refill(kind, symbol, top + 1, hwm,
                                           self.recorder.on_event, "recorder_failed window")

    @property
    def recording(self) -> bool:
        return self._recorder_started and self.recorder.state == "recording"

    def toggle_stream(self, kind: str) -> bool:
        self.set_stream(kind, not self.enabled[kind])
        return self.enabled[kind]

    def set_polling(self, enabled: bool) -> None:
        if enabled:
            self.poller.start()
        else:
            asyncio.get_running_loop().create_task(self.poller.stop())

    # -- status (pulled by UIs) ---------------------------------------------------------

    async def _sample_rates_forever(self) -> None:
        while True:
            await asyncio.sleep(RATE_SAMPLE_S)
            self.sample_rates()

    def sample_rates(self) -> None:
        now = time.monotonic()
        routes = self.replay.streams if self.replay is not None else self.decoder.stats.routes
        counts = {name: r.messages for name, r in routes.items()}
        self._samples.append((now, counts))
        then, old = self._samples[0]
        if now > then:
            self._rates = {name: (n - old.get(name, 0)) / (now - then)
                           for name, n in counts.items()}

    def status(self) -> EngineStatus:
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
                rate=self._rates.get(name, 0.0),
                last_age_s=(now_ns - route.last_recv_ns) / 1e9
                if route and route.last_recv_ns else -1.0,
                latency_p50_ms=health.latency_p50_ms if health else None,
                latency_p99_ms=health.latency_p99_ms if health else None,
                stale=health.stale if health else False,
                cadence_ms=health.cadence_ms if health else None))
        if self.replay is not None:  # one row per recorded stream; ages in recorded time
            pos = self.replay.position_ns
            streams = [StreamStatus(name=n, kind=c.kind, symbol=c.symbol,
                                    enabled=self.enabled.get(c.kind, True),
                                    messages=c.messages, rate=self._rates.get(n, 0.0),
                                    last_age_s=(pos - c.last_recv_ns) / 1e9)
                       for n, c in sorted(self.replay.streams.items())]
        stats = self.decoder.stats
        return EngineStatus(
            uptime_s=time.monotonic() - self._started_at if self._started_at else 0.0,
            connections=self.manager.status(), streams=streams, consumers=self.bus.stats(),
            frames=stats.frames, bad_frames=stats.bad_frames,
            unknown_frames=stats.unknown_streams, published=self.bus.published,
            sink_errors=self.manager.sink_errors, rest=self.rest.stats,
            budget=self.rest.budget_status(), symbols_unknown=self.symbols_unknown,
            exchange_info_error=self.exchange_info_error,
            snapshots=self.poller.snapshots, snapshot_errors=self.poller.errors,
            enabled=dict(self.enabled), polling=self.poller.running,
            recording=self.recorder.status() if self._recorder_started else None,
            gaps=self.continuity.gaps,
            books=self.book_keeper.status() if self.book_keeper is not None else [],
            replay=self.replay.progress() if self.replay is not None else None,
            clock=self.clock_sync.status() if self.replay is None else None,
            backfill=dataclasses.replace(self.backfiller.stats)
            if self.backfiller is not None else None)
