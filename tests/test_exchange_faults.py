"""Fault hooks (ex.faults) and introspection used by client tests."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from tests.conftest import wait_until as until


@pytest.fixture
async def ex():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, ping_interval=0.1, record_sent=True)
    async with LocalExchange(cfg) as exchange:
        yield exchange



async def next_close(ws) -> aiohttp.WSMessage:
    for _ in range(10_000):
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.ERROR):
            return msg
    raise AssertionError("no close")


async def test_drop_all_aborts_without_close_frame(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: ex.connections)
        assert ex.faults.drop_all() == 1
        msg = await next_close(ws)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code == 1006  # abnormal closure: no close frame was received
        await until(lambda: not ex.connections)
        assert ex.stats.connections_closed == 1


async def test_close_all_sends_close_frame(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as a, \
            http.ws_connect(f"{ex.ws_url}/stream") as b:
        await until(lambda: len(ex.connections) == 2)
        ex.faults.close_all(code=1001)
        for ws in (a, b):
            msg = await next_close(ws)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001


async def test_stall_sends_nothing_then_resumes(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@bookTicker", autoping=False) as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        first = await ws.receive(timeout=3)  # a ping (interval 0.1 s)
        assert first.type == aiohttp.WSMsgType.PING
        ex.faults.stall(True)
        await ws.pong(first.data)
        while True:  # drain whatever was in flight before the stall
            try:
                await ws.receive(timeout=0.3)
            except TimeoutError:
                break
        ex.step(200)
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.5)  # no events, no pings, and still open
        assert ex.connections and not ex.connections[0].closed
        ex.faults.stall(False)
        ex.step(200)
        kinds = set()
        while aiohttp.WSMsgType.TEXT not in kinds:
            kinds.add((await ws.receive(timeout=3)).type)


async def test_send_malformed(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws") as ws:
        await until(lambda: ex.connections)
        ex.faults.send_malformed(3)
        for _ in range(3):
            msg = await ws.receive(timeout=3)
            assert msg.type == aiohttp.WSMsgType.TEXT
            with pytest.raises(ValueError):
                json.loads(msg.data)


async def test_skip_depth_id_makes_a_gap(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@depth@100ms") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        ex.step(20)
        first = json.loads((await ws.receive(timeout=3)).data)
        ex.faults.skip_depth_id("BTCUSDT")
        ex.step(20)
        second = json.loads((await ws.receive(timeout=3)).data)
        assert second["U"] == first["u"] + 2 and second["u"] >= second["U"]
        ex.step(20)
        third = json.loads((await ws.receive(timeout=3)).data)
        assert third["U"] == second["u"] + 1


async def test_server_shutdown_raw_and_combined(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as raw, \
            http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@trade") as comb:
        await until(lambda: len(ex.connections) == 2)
        ex.faults.server_shutdown(close_after_s=0.2)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = json.loads((await raw.receive(timeout=3)).data)
        c = json.loads((await comb.receive(timeout=3)).data)
        assert list(r) == ["e", "E"] and r["e"] == "serverShutdown"
        assert c["stream"] == "!serverShutdown" and c["data"]["e"] == "serverShutdown"
        for ws in (raw, comb):
            msg = await next_close(ws)
            assert msg.type == aiohttp.WSMsgType.CLOSE
        assert loop.time() - t0 >= 0.15


async def test_record_sent_and_stats(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(lambda: ex.connections and ex.connections[0].streams)
        conn_id = ex.connections[0].id
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":1}')
        reply = (await ws.receive(timeout=3)).data
        assert (conn_id, reply) in ex.sent_log
        assert ex.stats.connections_accepted == 1 and ex.stats["frames_sent"] >= 1
        assert ex.connections[0].control_log == [{"method": "LIST_SUBSCRIPTIONS", "id": 1}]


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
