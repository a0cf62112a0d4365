"""Health: per-stream latency (corrected by the clock offset) and per-stream stale
detection, pure and through the engine against the local exchange."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from rich.console import Console

from engine.binance.streams import StreamRef, parse_stream_name
from engine.engine import Engine
from engine.events import Trade
from engine.exchange import ExchangeConfig, LocalExchange
from engine.status import EngineStatus, StreamStatus
from engine.view.health import HealthMonitor, expected_cadence_ms, percentile
from tests.factories import book_ticker, partial_depth, trade
from tests.helpers import settings_for, wait_until
from tui.headless import status_table

# -- health: pure ---------------------------------------------------------------------


def ref(name: str) -> StreamRef:
    r = parse_stream_name(name)
    assert r is not None
    return r


def test_expected_cadences() -> None:
    assert expected_cadence_ms(ref("btcusdt@depth@100ms")) == 100
    assert expected_cadence_ms(ref("btcusdt@depth")) == 1000
    assert expected_cadence_ms(ref("btcusdt@depth20@100ms")) == 100
    assert expected_cadence_ms(ref("btcusdt@depth5")) == 1000
    assert expected_cadence_ms(ref("btcusdt@kline_1m")) == 2000
    assert expected_cadence_ms(ref("btcusdt@kline_1s")) == 1000
    assert expected_cadence_ms(ref("btcusdt@miniTicker")) == 1000
    for name in ("btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker"):
        assert expected_cadence_ms(ref(name)) is None
    assert percentile([1, 2, 3, 4], 0.5) == 2 and percentile([1, 2, 3, 4], 0.99) == 4


T0 = 1_700_000_000_000_000_000


def test_latency_percentiles_offset_corrected_and_bounded() -> None:
    h = HealthMonitor(window=100)
    offset = -1200  # exchange clock 1.2 s behind ours: raw recv − E is ~ +1200 ms
    for i in range(300):
        recv = T0 + i * 10_000_000
        event_ms = recv // 1_000_000 + offset - (i % 10)  # true latency 0..9 ms
        h.on_event(trade(event_time=event_ms, recv_ns=recv))
    rep = h.report(ref("btcusdt@trade"), True, offset_ms=offset, now_ns=T0 + 3 * 10**9, mono=1)
    assert rep.latency_p50_ms == 4 and rep.latency_p99_ms == 9
    assert len(h._tracks[(Trade, "BTCUSDT")].lat) == 100  # noqa: SLF001 - bounded ring
    h.on_event(book_ticker(recv_ns=T0))
    rep = h.report(ref("btcusdt@bookTicker"), True, now_ns=T0, mono=1)
    assert rep.latency_p50_ms is None and rep.latency_p99_ms is None  # spot: no event time


def test_stale_fixed_cadence_learned_cadence_and_rewatch() -> None:
    h = HealthMonitor()
    depth = ref("btcusdt@depth20@100ms")
    tr = ref("btcusdt@trade")
    h.watch([depth.name, tr.name], T0)
    # never arrived: judged from the moment it was enabled; 5 × 100 ms is below the 2 s floor
    assert not h.report(depth, True, now_ns=T0 + 1_900_000_000, mono=1).stale
    assert h.report(depth, True, now_ns=T0 + 2_100_000_000, mono=2).stale
    for i in range(10):
        h.on_event(partial_depth(i, recv_ns=T0 + 3 * 10**9 + i * 100_000_000))
    last = T0 + 3 * 10**9 + 900_000_000
    assert not h.report(depth, True, now_ns=last + 1_000_000_000, mono=3).stale
    rep = h.report(depth, True, now_ns=last + 2_500_000_000, mono=4)
    assert rep.stale and rep.silent_s == pytest.approx(2.5)
    assert not h.report(depth, False, now_ns=last + 9 * 10**9, mono=5).stale  # off: not judged

    # event-driven: not judged until it has shown its rhythm, then p99 gap × 5 (floor 2 s)
    for i in range(10):
        h.on_event(trade(event_time=0, recv_ns=T0 + i * 1_000_000_000))
    rep = h.report(tr, True, now_ns=T0 + 60 * 10**9, mono=6)
    assert rep.cadence_ms is None and not rep.stale
    for i in range(10, 40):
        h.on_event(trade(event_time=0, recv_ns=T0 + i * 1_000_000_000))
    end = T0 + 39 * 10**9
    rep = h.report(tr, True, now_ns=end + 4 * 10**9, mono=7)
    assert rep.cadence_ms == 1000 and not rep.stale
    assert h.report(tr, True, now_ns=end + 5_100_000_000, mono=8).stale
    h.watch([tr.name], end + 5 * 10**9)  # re-enabled: the silence clock restarts
    assert not h.report(tr, True, now_ns=end + 6 * 10**9, mono=9).stale


# -- through the real engine and the local exchange -------------------------------------


def render(status: EngineStatus) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(status_table(status))
    return out.getvalue()


def stream(status: EngineStatus, name: str) -> StreamStatus:
    return next(s for s in status.streams if s.name == name)


def messages(engine: Engine, name: str) -> Callable[[], int]:
    def count() -> int:
        route = engine.live.decoder.stats.routes.get(name)
        return route.messages if route else 0
    return count


@pytest.mark.parametrize("offset", [250, -1200])
async def test_offset_and_corrected_latency_through_the_engine(offset: int) -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=200, clock_offset_ms=offset)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        try:
            trades = messages(engine, "btcusdt@trade")
            await wait_until(lambda: engine.live.clock_sync.synced and trades() >= 100, 10,
                             "clock sync and 100 trades")
            status = engine.status()
        finally:
            await engine.stop()
    clock = status.clock
    assert clock is not None and clock.offset_ms is not None and clock.rtt_ms is not None
    assert abs(clock.offset_ms - offset) <= 5 + clock.rtt_ms / 2, clock
    assert clock.syncs == 1 and clock.failures == 0 and clock.last_sync_age_s >= 0
    for name in ("btcusdt@trade", "btcusdt@aggTrade"):
        s = stream(status, name)
        assert s.latency_p50_ms is not None and s.latency_p99_ms is not None, name
        # loopback: a few ms at most, whatever the exchange's clock says
        assert -5 <= s.latency_p50_ms <= 50 and s.latency_p50_ms <= s.latency_p99_ms <= 500, s
    for name in ("btcusdt@bookTicker", "btcusdt@depth20@100ms"):
        assert stream(status, name).latency_p50_ms is None  # no event time on the wire
    text = render(status)
    assert "p50/p99 ms" in text and "n/a" in text
    assert f"clock offset {clock.offset_ms:+.0f} ms (rtt " in text
    assert not any(s.stale for s in status.streams)


async def test_stream_marked_stale_when_it_stops_while_others_flow() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=200)) as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        try:
            trades = messages(engine, "btcusdt@trade")
            depth = messages(engine, "btcusdt@depth20@100ms")
            await wait_until(lambda: trades() >= 50 and depth() >= 3, 10, "trades and depth")
            status = engine.status()
            assert not any(s.stale for s in status.streams), status.streams
            assert stream(status, "btcusdt@trade").cadence_ms is not None  # learned

            ex.pause()  # order flow stops: no trades; partial depth and klines keep coming
            await wait_until(lambda: stream(engine.status(), "btcusdt@trade").stale, 8,
                             "trade stream stale")
            status = engine.status()
            assert stream(status, "btcusdt@aggTrade").stale
            assert not stream(status, "btcusdt@depth20@100ms").stale
            assert not stream(status, "btcusdt@kline_1m").stale
            assert all(c.state == "open" for c in status.connections)  # no reconnect needed
            assert "stale " in render(status)

            ex.resume()
            await wait_until(lambda: not stream(engine.status(), "btcusdt@trade").stale, 8,
                             "trade stream flowing again")
            engine.set_stream("trade", False)
            await wait_until(lambda: not stream(engine.status(), "btcusdt@trade").enabled, 5,
                             "trade off")
            assert not stream(engine.status(), "btcusdt@trade").stale  # off is not stale
        finally:
            await engine.stop()
