"""Replay of a real hftbacktest recording: frames delivered byte-identical."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import SHARED, receive_texts

REC = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"
if not REC.exists():
    pytest.skip("../shared (real recordings) is not available", allow_module_level=True)
LINES = [line.split(" ", 1) for line in REC.read_text().splitlines()]
FRAMES = [text for _, text in LINES if text.startswith('{"stream"')]
SNAPSHOT = next(text for _, text in LINES if text.startswith('{"lastUpdateId"'))
STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


async def collect(ws, n: int, timeout: float = 5.0) -> list[str]:
    return await receive_texts(ws, n, timeout)


async def test_replay_combined_is_byte_identical_and_rest_serves_snapshot():
    cfg = ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), recording=str(REC), replay_speed=0,
                         rate=0)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        assert "BTCUSDT" not in ex.markets and "ETHUSDT" in ex.markets  # no synthetic BTCUSDT
        async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT&limit=1000") as r:
            assert await r.text() == SNAPSHOT  # the first snapshot before it is reached
        async with http.ws_connect(f"{ex.ws_url}/stream?streams={STREAMS}") as ws:
            got = await collect(ws, len(FRAMES))
        assert got == FRAMES
        await asyncio.wait_for(ex.replay_done.wait(), 5)
        async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
            assert await r.text() == SNAPSHOT
        async with http.get(f"{ex.rest_url}/api/v3/ticker/bookTicker?symbol=BTCUSDT") as r:
            last_bt = json.loads([f for f in FRAMES if "bookTicker" in f][-1])["data"]
            assert (await r.json())["bidPrice"] == last_bt["b"]


async def test_replay_raw_connection_gets_original_data_bytes():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), recording=str(REC), replay_speed=0, rate=0)
    expected = [f[len('{"stream":"btcusdt@trade","data":'):-1] for f in FRAMES
                if f.startswith('{"stream":"btcusdt@trade"')]
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        got = await collect(ws, len(expected))
    assert got == expected and len(expected) == 297


async def test_replay_is_paced_by_recorded_time():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), recording=str(REC), replay_speed=40.0, rate=0)
    span_s = (int(LINES[-1][0]) - int(LINES[0][0])) / 1e9  # 18.6 s recorded
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/stream?streams={STREAMS}") as ws:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        got = await collect(ws, len(FRAMES))
        elapsed = loop.time() - t0
    assert got == FRAMES
    assert span_s / 40 * 0.8 <= elapsed <= span_s / 40 + 2.0
