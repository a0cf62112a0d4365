"""Fault hooks (ex.faults) of the local exchange, checked with a raw client, and the
introspection client tests use (sent_log, stats, control_log)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import receive_texts
from tests.helpers import wait_until as until


def quiet_config(**kw: float) -> ExchangeConfig:
    """No order flow until the test steps the market; every frame sent is recorded."""
    return ExchangeConfig(symbols=("BTCUSDT",), rate=0, record_sent=True, **kw)


@pytest.fixture
async def ex():
    async with LocalExchange(quiet_config()) as exchange:
        yield exchange


@pytest.fixture
async def pinging_ex():
    """The same, pinging every 0.1 s (a stall must hold back pings too)."""
    async with LocalExchange(quiet_config(ping_interval=0.1)) as exchange:
        yield exchange


async def texts(ws, n: int, timeout: float = 3.0) -> list[str]:
    return await receive_texts(ws, n, timeout)


async def closing(ws) -> aiohttp.WSMessage:
    for _ in range(100_000):
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            return msg
    raise AssertionError("no close")


# -- socket faults: drops and closes -------------------------------------------------------


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


async def test_drop_all_aborts_without_close_frame(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: pinging_ex.connections)
        assert pinging_ex.faults.drop_all() == 1
        msg = await closing(ws)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code == 1006  # abnormal closure: no close frame was received
        await until(lambda: not pinging_ex.connections)
        assert pinging_ex.stats.connections_closed == 1


async def test_close_all_sends_close_frame(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@trade") as a, \
            http.ws_connect(f"{pinging_ex.ws_url}/stream") as b:
        await until(lambda: len(pinging_ex.connections) == 2)
        pinging_ex.faults.close_all(code=1001)
        for ws in (a, b):
            msg = await closing(ws)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001


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


async def test_server_shutdown_raw_and_combined(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@trade") as raw, \
            http.ws_connect(f"{pinging_ex.ws_url}/stream?streams=btcusdt@trade") as comb:
        await until(lambda: len(pinging_ex.connections) == 2)
        pinging_ex.faults.server_shutdown(close_after_s=0.2)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = json.loads((await raw.receive(timeout=3)).data)
        c = json.loads((await comb.receive(timeout=3)).data)
        assert list(r) == ["e", "E"] and r["e"] == "serverShutdown"
        assert c["stream"] == "!serverShutdown" and c["data"]["e"] == "serverShutdown"
        for ws in (raw, comb):
            msg = await closing(ws)
            assert msg.type == aiohttp.WSMsgType.CLOSE
        assert loop.time() - t0 >= 0.15


# -- socket faults: what is sent -----------------------------------------------------------


async def test_stall_sends_nothing_then_resumes(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@bookTicker", autoping=False) as ws:
        await until(lambda: pinging_ex.connections and pinging_ex.connections[0].streams)
        first = await ws.receive(timeout=3)  # a ping (interval 0.1 s)
        assert first.type == aiohttp.WSMsgType.PING
        pinging_ex.faults.stall(True)
        await ws.pong(first.data)
        while True:  # drain whatever was in flight before the stall
            try:
                await ws.receive(timeout=0.3)
            except TimeoutError:
                break
        pinging_ex.step(200)
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.5)  # no events, no pings, and still open
        assert pinging_ex.connections and not pinging_ex.connections[0].closed
        pinging_ex.faults.stall(False)
        pinging_ex.step(200)
        kinds = set()
        while aiohttp.WSMsgType.TEXT not in kinds:
            kinds.add((await ws.receive(timeout=3)).type)


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


async def test_send_malformed(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws") as ws:
        await until(lambda: pinging_ex.connections)
        pinging_ex.faults.send_malformed(3)
        for _ in range(3):
            msg = await ws.receive(timeout=3)
            assert msg.type == aiohttp.WSMsgType.TEXT
            with pytest.raises(ValueError):
                json.loads(msg.data)


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


async def test_skip_depth_id_makes_a_gap(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@depth@100ms") as ws:
        await until(lambda: pinging_ex.connections and pinging_ex.connections[0].streams)
        pinging_ex.step(20)
        first = json.loads((await ws.receive(timeout=3)).data)
        pinging_ex.faults.skip_depth_id("BTCUSDT")
        pinging_ex.step(20)
        second = json.loads((await ws.receive(timeout=3)).data)
        assert second["U"] == first["u"] + 2 and second["u"] >= second["U"]
        pinging_ex.step(20)
        third = json.loads((await ws.receive(timeout=3)).data)
        assert third["U"] == second["u"] + 1


# -- REST and clock faults -----------------------------------------------------------------


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


# -- introspection and slow consumers ------------------------------------------------------


async def test_record_sent_and_stats(pinging_ex, http):
    async with http.ws_connect(f"{pinging_ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: pinging_ex.connections and pinging_ex.connections[0].streams)
        conn_id = pinging_ex.connections[0].id
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        reply = (await ws.receive(timeout=3)).data
        assert (conn_id, reply) in pinging_ex.sent_log
        assert pinging_ex.stats.connections_accepted == 1 and pinging_ex.stats["frames_sent"] >= 1
        assert pinging_ex.connections[0].control_log == [{"method": "LIST_SUBSCRIPTIONS", "id": 1}]


async def test_slow_consumer_is_dropped_not_buffered():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=float("inf"), slow_consumer_s=0.3,
                         backpressure_backlog=500)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade", max_msg_size=0) as _ws:
        await until(lambda: ex.connections)
        conn = ex.connections[0]
        # never read: the kernel buffers fill, the server's queue stays bounded, then it drops us
        await until(lambda: ex.stats.slow_consumers_closed >= 1, timeout=15)
        assert len(conn.queue) <= cfg.max_backlog
        await until(lambda: not ex.connections, timeout=10)
