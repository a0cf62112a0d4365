"""The one REST weight budget against the local exchange's real limiter."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from engine.binance.weights import depth_weight, request_weight
from engine.clock import ExchangeClock, ManualClock
from engine.engine import Engine
from engine.errors import RestRejected, RestUnavailable, UnknownSymbols
from engine.exchange import ExchangeConfig, LocalExchange
from engine.rest.budget import WeightBudget
from engine.rest.client import Priority, RestClient
from engine.rest.exchange_info import fetch_exchange_info
from tests.helpers import ROOT, settings_for, wait_until


def test_weights_are_binance_current_ones() -> None:
    assert [depth_weight(n) for n in (5, 100, 101, 500, 501, 1000, 1001, 5000, 9999)] == [
        5, 5, 25, 25, 50, 50, 250, 250, 250]
    assert request_weight("/api/v3/exchangeInfo") == 20
    assert request_weight("/api/v3/aggTrades", {"symbol": "X"}) == 4
    assert request_weight("/api/v3/klines", {"symbol": "X"}) == 2
    assert request_weight("/api/v3/historicalTrades", {"symbol": "X"}) == 25
    assert request_weight("/api/v3/depth", {"symbol": "X"}) == 5  # default limit 100


async def test_priorities_resync_before_backfill_before_polling() -> None:
    budget = WeightBudget(limit=100, window_s=1.0)
    await budget.acquire(98)  # this window is spent
    order: list[str] = []

    async def call(name: str, prio: Priority) -> None:
        await budget.acquire(60, int(prio))
        order.append(name)

    tasks = [asyncio.create_task(call("poll", Priority.POLL)),
             asyncio.create_task(call("backfill", Priority.BACKFILL)),
             asyncio.create_task(call("resync", Priority.RESYNC))]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["resync", "backfill", "poll"]  # one per window, most urgent first


def test_the_weight_window_follows_the_exchange_clock() -> None:
    """Binance counts weight per minute of *its* clock: with the exchange 30 s ahead of
    us, its minute turns over when ours is half way. The budget reads the same
    ExchangeClock that clock sync keeps measured (it used to assume offset 0)."""
    local = ManualClock(wall_ns=1_700_000_050_000_000_000)  # :10 past a local minute
    exchange = ExchangeClock(local)
    budget = WeightBudget(limit=100, window_s=60.0, clock=exchange)
    budget.used = 90
    local.advance(25)  # local :35, exchange (offset 0) :35: same window
    assert budget.status().used == 90
    exchange.offset_ms = 30_000  # the next sync measures the exchange 30 s ahead
    assert budget.status().used == 0  # exchange :05 of the next minute: a fresh window


def limited_exchange(**kw: object) -> LocalExchange:
    return LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=0, weight_limit=300,
                                        weight_window_s=2.0, **kw))


async def configured_client(ex: LocalExchange) -> RestClient:
    rest = RestClient(ex.rest_url)
    info = await fetch_exchange_info(rest, ("BTCUSDT",))
    assert (info.weight_limit, info.weight_window_s) == (300, 2.0)
    rest.budget.configure(info.weight_limit, info.weight_window_s)
    return rest


async def test_a_burst_never_crosses_the_exchange_limit() -> None:
    async with limited_exchange() as ex:
        rest = await configured_client(ex)
        t0 = time.monotonic()
        bodies = await asyncio.gather(*(rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
                                        for _ in range(120)))  # 600 weight: 2+ windows
        elapsed = time.monotonic() - t0
        await rest.close()
        assert len(bodies) == 120
        assert ex.limiter.rejected == 0  # not one 429/418
        assert ex.limiter.peak_accepted <= 300
        assert elapsed > 1.0  # it waited for new windows instead of pushing on


async def test_server_header_counts_weight_used_by_others_on_the_same_ip(http) -> None:
    async with limited_exchange() as ex:
        rest = await configured_client(ex)
        await asyncio.sleep(2.05 - time.time() % 2.0)  # start of a fresh window
        for _ in range(51):  # another process on this IP spends 255
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                assert r.status == 200
        for _ in range(10):  # our first reply reveals 260 used: we then wait
            await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        await rest.close()
        assert ex.limiter.rejected == 0


async def test_429_pauses_every_call_until_retry_after_and_never_earns_a_ban(http) -> None:
    async with limited_exchange() as ex:
        rest = await configured_client(ex)
        await asyncio.sleep(2.05 - time.time() % 2.0)
        for _ in range(60):  # others spend all 300
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                assert r.status == 200
        rest.budget.used = 0  # we have not seen a header this window
        with pytest.raises(RestRejected) as err:
            await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})
        assert err.value.status == 429 and err.value.code == -1003
        st = rest.budget_status()
        assert st.blocked_for_s > 0 and not st.banned and "rate limited" in st.block_reason
        await rest.get("/api/v3/depth", {"symbol": "BTCUSDT"})  # waits out Retry-After
        await rest.close()
        assert ex.limiter.rejected == 1  # the one 429; no 418 followed


async def test_418_ban_stops_all_rest_until_it_ends(http) -> None:
    async with limited_exchange(ban_seconds=1.5) as ex:
        rest = await configured_client(ex)
        await asyncio.sleep(2.05 - time.time() % 2.0)
        for _ in range(70):  # another client ignores the 429 and gets the IP banned
            async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
                if r.status == 418:
                    break
        with pytest.raises(RestRejected) as err:
            await rest.get("/api/v3/time")
        assert err.value.status == 418
        st = rest.budget_status()
        assert st.banned and st.bans == 1 and "IP banned" in st.block_reason
        t0 = time.monotonic()
        await rest.get("/api/v3/time")  # waits until the ban is over
        assert time.monotonic() - t0 > 0.5
        await rest.close()


async def test_engine_adopts_announced_limit_and_reports_unknown_symbols() -> None:
    async with limited_exchange() as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        await wait_until(lambda: engine.live.info.info is not None, 10, "exchangeInfo")
        assert engine.status().budget.limit == 300
        await engine.stop()
        bad = Engine(settings_for(ex, ("symbols", ["BTCUSDT", "NOPEUSDT"])))
        await bad.start()
        await wait_until(lambda: bad.status().symbols_unknown, 10, "unknown symbol noticed")
        assert bad.status().symbols_unknown == ("NOPEUSDT",)
        await bad.stop()
        rest = RestClient(ex.rest_url)
        with pytest.raises(UnknownSymbols) as exc:
            await fetch_exchange_info(rest, ("BTCUSDT", "NOPEUSDT", "ZZZUSDT"))
        assert exc.value.symbols == ["NOPEUSDT", "ZZZUSDT"]
        await rest.close()


async def test_cli_rejects_an_unknown_symbol_with_one_line() -> None:
    async with limited_exchange() as ex:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tui", "--no-ui", "--no-storage", "-s", "NOPEUSDT",
            "--ws-url", ex.ws_url, "--rest-url", ex.rest_url, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"binance-live: config error: symbols: 'NOPEUSDT' not listed by {ex.rest_url}"
        "/api/v3/exchangeInfo (not a Binance spot symbol)"]


def test_budget_refunds_calls_that_never_reached_the_server() -> None:
    async def run() -> int:
        rest = RestClient("http://127.0.0.1:1")
        with pytest.raises(RestUnavailable) as info:  # the one error family, never aiohttp's
            await rest.get("/api/v3/exchangeInfo")
        assert not info.value.sent and info.value.retryable
        await rest.close()
        return rest.budget.used

    assert asyncio.run(run()) == 0
