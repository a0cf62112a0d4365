"""The fault hooks the fault matrix uses (ex.faults), checked with a raw client."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from tests.conftest import wait_until as until


@pytest.fixture
async def ex():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, record_sent=True)
    async with LocalExchange(cfg) as exchange:
        yield exchange


async def texts(ws, n: int, timeout: float = 3.0) -> list[str]:
    out = []
    while len(out) < n:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(msg.data)
    return out


async def closing(ws) -> aiohttp.WSMessage:
    for _ in range(100_000):
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            return msg
    raise AssertionError("no close")


async def test_abrupt_drop_is_1006_and_close_1008_has_a_close_frame(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as a:
        await until(lambda: ex.connections)
        ex.faults.drop_all()
        await closing(a)
        assert a.close_code == 1006
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as b:
        await until(lambda: len(ex.connections) == 1)
        ex.faults.close_all(1008, "Policy violation")
        msg = await closing(b)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
    assert ex.faults.injected["drop"] == 1 and ex.faults.injected["close_1008"] == 1


async def test_truncated_frames_replace_real_events(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@trade") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        ex.faults.truncate_next(2)
        ex.step(300)
        got = await texts(ws, 3)
        for bad in got[:2]:
            with pytest.raises(ValueError):
                json.loads(bad)
        json.loads(got[2])  # the third is whole again
        originals = [json.loads(t) for _, t in ex.faults.truncated]
        assert len(originals) == 2 and all(o["data"]["e"] == "trade" for o in originals)
        assert got[0] == ex.faults.truncated[0][1][: len(got[0])]


async def test_unknown_events_are_valid_json_on_unknown_streams(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/stream") as ws:
        await until(lambda: ex.connections)
        ex.faults.send_unknown(3)
        frames = [json.loads(t) for t in await texts(ws, 3)]
        assert {f["stream"] for f in frames} == {"btcusdt@futureStream", "!newGlobal@arr",
                                                 "btcusdt@brandNew"}


async def test_duplicate_last_resends_the_last_frames(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        ex.step(300)
        first = await texts(ws, 4)
        while True:  # drain the rest of the burst
            try:
                first.append((await ws.receive(timeout=0.3)).data)
            except TimeoutError:
                break
        assert ex.faults.duplicate_last(3) == 3
        again = await texts(ws, 3)
        assert again == first[-3:]


async def test_reorder_swaps_two_frames_of_one_stream(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@trade") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        ex.faults.reorder_next(1)
        ex.step(300)
        ids = [json.loads(t)["data"]["t"] for t in await texts(ws, 4)]
        assert ids[0] == ids[1] + 1 and ids[2] == ids[0] + 1, ids
        assert not ex.faults.active


async def test_slow_drip_delays_every_frame(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        ex.faults.slow_drip(0.05)
        ex.step(300)
        t0 = time.monotonic()
        await texts(ws, 5)
        assert time.monotonic() - t0 >= 0.2
        ex.faults.slow_drip(0)
        assert not ex.faults.active


@pytest.mark.parametrize(("status", "retry"), [(429, "2"), (418, "7"), (503, None),
                                               (502, None)])
async def test_rest_errors_for_the_next_n_requests(ex, http, status, retry):
    ex.faults.rest_errors(status, 2, retry_after=float(retry or 0))
    for _ in range(2):
        async with http.get(f"{ex.rest_url}/api/v3/time") as r:
            assert r.status == status
            assert r.headers.get("Retry-After") == retry
            if status in (418, 429):
                assert (await r.json())["code"] == -1003
    async with http.get(f"{ex.rest_url}/api/v3/time") as r:
        assert r.status == 200
    assert ex.limiter.rejected == 0  # injected, not the limiter's
    assert ex.faults.injected[f"rest_{status}"] == 2
    assert [s for _, _, s, _ in ex.faults.rest_log] == [status, status, 200]


async def test_clock_step_and_drift(ex, http):
    async def server_ms() -> int:
        async with http.get(f"{ex.rest_url}/api/v3/time") as r:
            return (await r.json())["serverTime"]

    ex.faults.set_clock(offset_ms=5000)
    assert abs(await server_ms() - (time.time() * 1000 + 5000)) < 500
    ex.faults.set_clock(drift_ppm=100_000)  # +100 ms per second
    await asyncio.sleep(0.5)
    ahead = await server_ms() - time.time() * 1000
    assert 5030 < ahead < 5300, ahead
    ex.faults.set_clock(offset_ms=0, drift_ppm=0)
    assert abs(await server_ms() - time.time() * 1000) < 500


async def test_accelerated_lifetime_closes_open_and_new_connections(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: ex.connections)
        ex.faults.set_lifetime(0.3, notice=True)
        notice = json.loads((await ws.receive(timeout=3)).data)
        assert notice["e"] == "serverShutdown"
        msg = await closing(ws)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws2:
        t0 = time.monotonic()
        await closing(ws2)
        assert 0.2 < time.monotonic() - t0 < 3
