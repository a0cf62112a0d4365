"""LocalExchange: one aiohttp port serving Binance-compatible WS streams and REST.

Why one class owning the loops: the market, the subscription index and the
periodic publishers (depth 100 ms/1 s, klines and tickers 1 s) share the same
clock and update ids, so keeping them together keeps sequencing exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import klines as kl
from . import payloads as pl
from . import replay as rp
from .config import ExchangeConfig
from .connection import Connection
from .faults import Faults
from .market import EV_AGG, EV_BOOK, EV_TRADE, Market
from .ratelimit import WeightLimiter
from .rest import RestApi, parse_query
from .stats import Stats
from .streams import ALL_MINI, Stream, parse_stream

_TIME_UNITS = {"MICROSECOND": True, "microsecond": True, "MILLISECOND": False,
               "millisecond": False}
_BATCH = 64  # rate=inf: operations per symbol between yields to the event loop


REPLAY_WAIT_ALL_MAX_S = 5.0  # replay_wait_all: start anyway this long after the first

class LocalExchange:
    """A local Binance spot market-data exchange (see the package docstring)."""

    def __init__(self, config: ExchangeConfig | None = None, **overrides: Any) -> None:
        cfg = config or ExchangeConfig()
        for k, v in overrides.items():
            setattr(cfg, k, v)
        self.config = cfg
        self.stats = Stats()
        self.sent_log: list[tuple[int, str]] = []
        self.faults = Faults(self)
        self.limiter = WeightLimiter(cfg.weight_limit, cfg.weight_window_s, cfg.ban_seconds)
        self.rest = RestApi(self)
        self._frames: list[rp.Frame] = []
        self._replay_symbol = ""
        self._replay_symbols: frozenset[str] = frozenset()  # a dataset may hold several
        self._replay_streams: frozenset[str] = frozenset()
        self._replay_snap: dict[str, str] = {}
        self._replay_bt: dict[str, str] = {}
        self._replay_go = asyncio.Event()
        self._replay_fallback: asyncio.TimerHandle | None = None
        self.replay_done = asyncio.Event()
        self.replay_passes = 0  # passes of the recording sent completely
        self.replay_wall_s = 0.0  # how long the replay took, and the process CPU meanwhile
        self.replay_cpu_s = 0.0
        self._replay_stop_at = math.inf  # loop time the replay ends at (stop_replay: now)
        self._replay_released = asyncio.Event()
        if cfg.replay_loops <= 0 and cfg.replay_seconds <= 0:
            raise ValueError("replay_loops=0 (loop until stopped) needs replay_seconds > 0")
        self._passes: rp.Passes | None = None
        if cfg.recording and cfg.replay_loops != 1:  # looped: the frames live in Passes
            self._passes = rp.load_passes(cfg.recording, cfg.replay_cache,
                                          prepare=cfg.replay_speed <= 0)
            self._replay_symbol = self._passes.symbol
            self._replay_symbols = frozenset(self._passes.symbols)
            self._replay_streams = self._passes.streams
            if self._passes.snapshot is not None:
                self._replay_snap[self._replay_symbol] = self._passes.snapshot
        elif cfg.recording:
            self._frames = rp.load(cfg.recording)
            self._replay_symbol = rp.symbol_of(self._frames)
            self._replay_symbols = frozenset(rp.symbols_of(self._frames))
            self._replay_streams = frozenset(f.stream for f in self._frames if f.stream)
            first = next((f for f in self._frames if not f.stream), None)
            if first is not None:
                self._replay_snap[self._replay_symbol] = first.text
        now = self.now_ms()
        self.markets: dict[str, Market] = {
            s: Market(cfg.spec(s), cfg.seed, cfg.history, now)
            for s in cfg.symbols if s not in self._replay_symbols}
        for m in self.markets.values():
            if cfg.history_minutes:  # a market that already traded: REST klines have bars
                for t in range(now - cfg.history_minutes * 60_000, now - 1_000, 3_000):
                    m.step(t, 3)
            if cfg.warmup_ops:
                m.step(now, cfg.warmup_ops)
                m.drain()
                m.reset_diffs()
        self.all_symbols: tuple[str, ...] = tuple(dict.fromkeys(
            [*cfg.symbols, *sorted(self._replay_symbols)]))
        self._names = {s: {k: f"{s.lower()}@{k}" for k in
                           ("trade", "aggTrade", "bookTicker", "depth", "depth@100ms",
                            "miniTicker", "ticker")} for s in self.all_symbols}
        self._conns: dict[int, Connection] = {}
        self.closed_connections: deque[Connection] = deque(maxlen=1000)
        self._subs: dict[str, set[Connection]] = {}
        self._parsed: dict[str, Stream] = {}
        self._kstate: dict[str, int] = {}
        self._mini_seen: dict[str, int] = {}
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._drained = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._runner: web.AppRunner | None = None
        self.host = "127.0.0.1"
        self.port = 0

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> LocalExchange:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = int(self._runner.addresses[0][1])  # the port bound (port 0: a free one)
        self._tasks = [asyncio.ensure_future(c) for c in
                       (self._flow_loop(), self._depth_loop(), self._second_loop())]
        if self._frames or self._passes is not None:
            self._tasks.append(asyncio.ensure_future(self._replay_loop()))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        conns = self.connections
        for c in conns:
            c.close(1001, "Server shutting down")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while any(not c.closed for c in conns) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for c in conns:
            if not c.closed:
                c.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ introspection
    def now_ms(self) -> int:
        """Exchange time: local wall clock + clock_offset_ms (+ any drift, faults.set_clock)."""
        now = time.time_ns() // 1_000_000 + self.config.clock_offset_ms
        drift = self.faults.drift_ms()
        return now + int(drift) if drift else now

    @property
    def connections(self) -> list[Connection]:
        return list(self._conns.values())

    def market(self, symbol: str) -> Market:
        return self.markets[symbol.upper()]

    def used_weight(self, ip: str = "127.0.0.1") -> int:
        return self.limiter.used(ip, time.time())

    def pause(self) -> None:
        """Stop the order flow (periodic publishers keep running and flush pending diffs)."""
        self._resumed.clear()

    def resume(self) -> None:
        self._resumed.set()

    def step(self, n: int = 1, symbol: str | None = None) -> None:
        """Run `n` order-flow operations synchronously (per symbol) and publish the events."""
        now = self.now_ms()
        for m in ([self.market(symbol)] if symbol else self.markets.values()):
            m.step(now, n)
            self.stats.ops += n
            self._publish_market(m)

    def notify_drained(self) -> None:
        """A connection's writer emptied its queue (rate=inf backpressure waits on it)."""
        self._drained.set()

    def report(self) -> dict[str, Any]:
        """Counters and every connection's :meth:`Connection.report` (open ones first)."""
        return {"stats": self.stats.as_dict(), "replay_passes": self.replay_passes,
                "replay_wall_s": self.replay_wall_s, "replay_cpu_s": self.replay_cpu_s,
                "connections": [c.report() for c in (*self._conns.values(),
                                                     *self.closed_connections)]}

    def release_replay(self) -> None:
        """Let a held replay (``replay_hold``) start (once its subscribers are there)."""
        self._replay_released.set()

    def stop_replay(self) -> None:
        """End the replay now: nothing more is queued (what is queued is still sent);
        benchmarks call it when their measurement window is over."""
        self._replay_stop_at = 0.0

    def replay_snapshot(self, symbol: str) -> str | None:
        return self._replay_snap.get(symbol)

    def replay_book_ticker(self, symbol: str) -> dict | None:
        import json
        raw = self._replay_bt.get(symbol)
        return json.loads(raw) if raw else None

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, conn: Connection, names: list[str]) -> None:
        """``conn`` now receives ``names`` (initial streams, or a SUBSCRIBE)."""
        for n in names:
            conn.add_stream(n)
            self._subs.setdefault(n, set()).add(conn)
            if n not in self._parsed:
                st = parse_stream(n)
                if st is not None:
                    self._parsed[n] = st
            if n.split("@", 1)[0].upper() in self._replay_symbols:
                if not self.config.replay_wait_all or all(
                        self._subs.get(s) for s in self._replay_streams):
                    self._replay_go.set()
                elif self._replay_fallback is None:  # a client that never takes them all
                    self._replay_fallback = asyncio.get_running_loop().call_later(
                        REPLAY_WAIT_ALL_MAX_S, self._replay_go.set)

    def unsubscribe(self, conn: Connection, names: list[str]) -> None:
        """``conn`` no longer receives ``names``."""
        for n in names:
            conn.drop_stream(n)
            subs = self._subs.get(n)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self._subs[n]
                    self._parsed.pop(n, None)
                    self._kstate.pop(n, None)

    def forget(self, conn: Connection) -> None:
        """``conn`` has closed: it receives nothing more and moves to the closed list."""
        self.unsubscribe(conn, list(conn.streams))
        if self._conns.pop(conn.id, None) is not None:
            self.stats.connections_closed += 1
            self.closed_connections.append(conn)

    # ------------------------------------------------------------------ publishing
    def _fan(self, stream: str, build: Callable[[int], str]) -> None:
        """Encode once per time unit and envelope, enqueue to every subscriber."""
        conns = self._subs.get(stream)
        if not conns:
            return
        raw: dict[int, str] = {}
        comb: dict[int, str] = {}
        for c in tuple(conns):
            if c.stalled:
                continue
            mul = c.mul
            payload = raw.get(mul)
            if payload is None:
                payload = raw[mul] = build(mul)
            if c.combined:
                text = comb.get(mul)
                if text is None:
                    text = comb[mul] = pl.wrap(stream, payload)
                c.enqueue(text)
            else:
                c.enqueue(payload)

    def _publish_market(self, m: Market) -> None:
        events = m.drain()
        if not events:
            return
        names = self._names[m.symbol]
        subs = self._subs
        t_on, a_on, b_on = (names["trade"] in subs, names["aggTrade"] in subs,
                            names["bookTicker"] in subs)
        if not (t_on or a_on or b_on):
            return
        for tag, _ts, ev in events:
            if tag == EV_TRADE:
                if t_on:
                    self._fan(names["trade"], functools.partial(pl.trade, m, ev))
            elif tag == EV_AGG:
                if a_on:
                    self._fan(names["aggTrade"], functools.partial(pl.agg_trade, m, ev))
            elif tag == EV_BOOK and b_on:
                self._fan(names["bookTicker"], functools.partial(pl.book_ticker, m, ev))

    async def _backpressure(self, backlog: int = 0, replay: bool = False) -> None:
        """rate=inf: wait while a connection is backlogged (more than ``backlog`` queued
        items; 0: the configured backpressure_backlog); drop chronically slow ones.
        ``replay``: return as soon as the replay is to end (stop_replay)."""
        cfg = self.config
        backlog = backlog or cfg.backpressure_backlog
        loop = asyncio.get_running_loop()
        for _ in range(10_000):
            now = loop.time()
            if replay and now >= self._replay_stop_at:
                return
            slow = False
            for c in self._conns.values():
                if c.stalled or len(c.queue) <= backlog:
                    c.over_soft_since = None
                    continue
                if c.over_soft_since is None:
                    c.over_soft_since = now
                elif now - c.over_soft_since > cfg.slow_consumer_s:
                    self.stats.slow_consumers_closed += 1
                    c.queue.clear()
                    c.close(1008, "Slow consumer", timeout=0.5)
                    continue
                slow = True
            if not slow:
                return
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), 0.05)

    # ------------------------------------------------------------------ loops
    async def _flow_loop(self) -> None:
        cfg = self.config
        if cfg.rate <= 0 or not self.markets:
            return
        loop = asyncio.get_running_loop()
        if cfg.unlimited:
            while True:
                await self._resumed.wait()
                await self._backpressure()
                now = self.now_ms()
                for m in self.markets.values():
                    m.step(now, _BATCH)
                    self._publish_market(m)
                self.stats.ops += _BATCH * len(self.markets)
                await asyncio.sleep(0)
        last, carry = loop.time(), 0.0
        while True:
            await asyncio.sleep(0.01)
            if not self._resumed.is_set():
                await self._resumed.wait()
                last, carry = loop.time(), 0.0
                continue
            t = loop.time()
            due = (t - last) * cfg.rate + carry
            last = t
            n = int(due)
            carry = due - n
            n = min(n, int(cfg.rate) + 1)
            if n:
                self.step(n)

    async def _aligned(self, period_ms: int, offset_ms: int = 0, after: int = 0) -> int:
        """Sleep until the next multiple of `period_ms` of exchange time (+ offset); return it.

        The returned tick time is used as the event time E, so periodic events are spaced
        exactly even when the loop wakes up late under load.
        """
        now = self.now_ms()
        base = max(now, after)  # never repeat a tick if the sleep woke up a hair early
        target = (base - offset_ms) // period_ms * period_ms + period_ms + offset_ms
        await asyncio.sleep((target - now) / 1000)
        return target

    async def _depth_loop(self) -> None:
        now = 0
        while True:
            now = await self._aligned(100, after=now)
            whole_second = now % 1000 == 0
            for m in self.markets.values():
                self._publish_diff(m, 1, now)
                if whole_second:
                    self._publish_diff(m, 0, now)
            for name, st in list(self._parsed.items()):
                if st.kind == "partial" and (st.fast or whole_second):
                    market = self.markets.get(st.symbol)
                    if market is not None:
                        snap = market.depth(st.levels)
                        self._fan(name, functools.partial(pl.partial_depth, snap))

    def _publish_diff(self, m: Market, speed: int, now: int) -> None:
        name = self._names[m.symbol]["depth@100ms" if speed else "depth"]
        diff = m.take_diff(speed)
        if diff is not None and name in self._subs:
            self._fan(name, lambda mul: pl.depth_update(m, diff, now, mul))

    async def _second_loop(self) -> None:
        now = 0
        while True:
            now = await self._aligned(1000, 2, after=now)
            self._publish_second(now)

    def _publish_second(self, now: int) -> None:
        """Klines (1 s / 2 s cadence + closing events) and 24 h tickers."""
        sec = now // 1000
        stats: dict[str, dict] = {}

        def stats_of(m: Market) -> dict:
            st = stats.get(m.symbol)
            if st is None:
                st = stats[m.symbol] = m.stats(now)
            return st

        for name, st in list(self._parsed.items()):
            m = self.markets.get(st.symbol)
            if m is None:
                continue
            if st.kind == "kline":
                self._publish_kline(name, st, m, now, sec)
            elif st.kind == "miniTicker":
                s = stats_of(m)
                self._fan(name, functools.partial(pl.mini_ticker, m, s, now))
            elif st.kind == "ticker":
                s = stats_of(m)
                self._fan(name, functools.partial(pl.ticker, m, s, now))
        if ALL_MINI in self._subs:
            changed = [m for m in self.markets.values()
                       if self._mini_seen.get(m.symbol) != m.last_trade_id]
            for m in changed:
                self._mini_seen[m.symbol] = m.last_trade_id
            if changed:
                items = [(m, stats_of(m)) for m in changed]
                self._fan(ALL_MINI, lambda mul: "[" + ",".join(
                    pl.mini_ticker(m, s, now, mul) for m, s in items) + "]")

    def _publish_kline(self, name: str, st: Stream, m: Market, now: int, sec: int) -> None:
        iv, tz = st.interval, st.tz_ms
        bucket = kl.bucket_start(iv, now, tz)
        prev = self._kstate.get(name)
        self._kstate[name] = bucket
        if prev is not None and prev != bucket:
            k = m.candle(iv, tz, prev)
            self._fan(name, lambda mul: pl.kline(m, iv, k, True, now, tz, mul))
        if iv != "1s" and (prev is None or sec % 2 == 0):
            cur = m.candle(iv, tz, bucket)
            self._fan(name, lambda mul: pl.kline(m, iv, cur, False, now, tz, mul))

    async def _replay_loop(self) -> None:
        cfg = self.config
        if cfg.replay_wait_for_subscriber:
            await self._replay_go.wait()
        if cfg.replay_hold:
            await self._replay_released.wait()
        loop = asyncio.get_running_loop()
        t0, c0 = loop.time(), time.process_time()
        if cfg.replay_seconds > 0:
            self._replay_stop_at = min(self._replay_stop_at, t0 + cfg.replay_seconds)
        passes = self._passes
        k = 0
        while cfg.replay_loops <= 0 or k < cfg.replay_loops:
            if passes is None:
                sent = await self._replay_pass(
                    (f.ns, f.stream, f.text, f.data) for f in self._frames)
            elif (cfg.replay_speed <= 0 and passes.exact(k) and not cfg.record_sent
                  and not self.faults.active):
                sent = await self._replay_chunks(passes, k)
            else:
                sent = await self._replay_pass(passes.frames(k))
            if not sent:
                break
            k += 1
        self.replay_passes = k
        self.replay_wall_s, self.replay_cpu_s = loop.time() - t0, time.process_time() - c0
        self.replay_done.set()

    async def _replay_pass(self, frames: rp.Pass) -> bool:
        """Send one pass; False once the replay's end time is reached."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        speed = cfg.replay_speed
        sym = self._replay_symbol
        stats, subs, bt = self.stats, self._subs, self._replay_bt
        t0 = loop.time()
        ns0 = -1
        i = 0
        for ns, stream, text, data in frames:
            if speed > 0:
                if ns0 < 0:
                    ns0 = ns
                due = t0 + (ns - ns0) / 1e9 / speed
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if loop.time() >= self._replay_stop_at:
                    return False
            elif i & 255 == 0:
                await self._backpressure(replay=True)
                await asyncio.sleep(0)
                if loop.time() >= self._replay_stop_at:
                    return False
            i += 1
            stats.replay_frames += 1
            if not stream:
                self._replay_snap[sym] = text
                continue
            if stream.endswith("@bookTicker"):
                bt[stream.split("@", 1)[0].upper()] = data
            conns = subs.get(stream)
            if conns:
                for c in tuple(conns):
                    if not c.stalled:
                        c.enqueue(text if c.combined else data)
        return True

    async def _replay_chunks(self, passes: rp.Passes, k: int) -> bool:
        """The fast path of a looped ``--speed 0`` replay: each connection gets every
        chunk of the pass as one pre-framed ``bytes`` (``Passes.chunk``)."""
        loop = asyncio.get_running_loop()
        limit = max(1, self.config.backpressure_backlog // rp.CHUNK)
        streams = self._replay_streams
        bridge = passes.bridge_text(k)
        if bridge is not None:
            for c in tuple(self._subs.get(bridge[0], ())):
                if not c.stalled:
                    c.enqueue(bridge[1] if c.combined else bridge[2])
        sym = self._replay_symbol
        for ci in range(passes.chunks):
            await self._backpressure(limit, replay=True)
            await asyncio.sleep(0)
            if loop.time() >= self._replay_stop_at:
                return False
            kinds: dict[tuple[frozenset[str], bool], list[Connection]] = {}
            for c in self._conns.values():
                if c.stalled:
                    continue
                mine = streams.intersection(c.stream_names)
                if mine:
                    kinds.setdefault((frozenset(mine), c.combined), []).append(c)
            for (names, combined), conns in kinds.items():
                blob, n = passes.chunk(ci, k, names, combined)
                if n:
                    for c in conns:
                        c.enqueue_frames(blob, n)
            snaps, tickers = passes.meta[ci]
            for i in snaps:
                self._replay_snap[sym] = passes.render(i, k)
            for symbol, i in tickers.items():
                self._replay_bt[symbol] = passes.render(i, k)
            self.stats.replay_frames += min(rp.CHUNK, len(passes.body) - ci * rp.CHUNK)
        return True

    # ------------------------------------------------------------------ HTTP
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = unquote(request.rel_url.raw_path)
        if path.startswith("/api/v3/"):
            return await self.rest.handle(request, path[len("/api/v3/"):])
        ws_path = _ws_path(path)
        if ws_path:
            return await self._websocket(request, ws_path)
        return web.Response(status=404, text="")

    async def _websocket(self, request: web.Request, path: str) -> web.StreamResponse:
        q = parse_query(request.rel_url.raw_query_string)
        unit = q.get("timeUnit")
        if unit is not None and unit not in _TIME_UNITS:
            return web.json_response({"code": -1194, "msg": "Invalid time unit."}, status=400)
        if path == "/stream":
            names, combined = [s for s in q.get("streams", "").split("/") if s], True
        else:
            # ccxt opens /ws/<n> (n = its connection index) and subscribes later: a path
            # segment that is not even shaped like a stream name is ignored, as Binance does.
            names = [s for s in path[4:].split("/") if s and ("@" in s or parse_stream(s))]
            combined = False
        names = list(dict.fromkeys(names))
        if any(parse_stream(n) is None for n in names):
            return web.json_response({"code": 2, "msg": "Invalid request: invalid stream"},
                                     status=400)
        if len(names) > self.config.max_streams:
            return web.json_response({"code": 4, "msg": "Too many subscriptions"}, status=400)
        ws = web.WebSocketResponse(autoping=False, compress=False, max_msg_size=1 << 20)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Expected a WebSocket upgrade")
        await ws.prepare(request)
        conn = Connection(self, ws, request, path, combined, bool(_TIME_UNITS.get(unit or "")))
        self._conns[conn.id] = conn
        self.stats.connections_accepted += 1
        await conn.run(names)
        return ws


def _ws_path(path: str) -> str:
    """The WebSocket route of a request path, by its suffix ('' = not a WebSocket path).

    Clients pointed at a local exchange keep Binance's host in the path
    (``/stream.binance.com/ws``: ccxt decides spot vs futures from the URL text), so any
    prefix is ignored: ``…/stream`` is combined mode, ``…/ws`` and ``…/ws/<x>`` raw mode.
    """
    if path.endswith("/stream"):
        return "/stream"
    if path.endswith("/ws"):
        return "/ws"
    if "/ws/" in path:
        return "/ws/" + path.split("/ws/", 1)[1]
    return ""
