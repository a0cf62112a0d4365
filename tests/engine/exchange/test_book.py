"""A raw client rebuilds the exchange's book from the diff stream + REST snapshot."""

from __future__ import annotations

import asyncio
import itertools
import json

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from engine.exchange.testing import BookRebuilder
from tests.helpers import wait_until as until


@pytest.mark.parametrize("rate,ops", [(float("inf"), 150_000), (4000.0, 4_000)])
async def test_book_rebuilt_from_diff_stream_equals_exchange_book(rate, ops):
    cfg = ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=rate)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        m = ex.market("ETHUSDT")
        rb = BookRebuilder()
        diffs = []
        async with http.ws_connect(f"{ex.ws_url}/ws/ethusdt@depth@100ms") as ws:

            async def reader() -> None:
                async for msg in ws:
                    ev = json.loads(msg.data)
                    diffs.append(ev)
                    rb.on_diff(ev)

            task = asyncio.create_task(reader())
            await until(lambda: rb.buffer)  # buffer first, then fetch the snapshot
            for _ in range(5):
                async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=ETHUSDT&limit=5000") as r:
                    if rb.on_snapshot(await r.json()):
                        break
            assert rb.book_id is not None
            start_ops = m.ops
            await until(lambda: m.ops - start_ops >= ops, timeout=15)
            ex.pause()
            await until(lambda: rb.book_id == m.update_id)
            task.cancel()
        assert rb.gaps == 0 and rb.applied >= 5
        for prev, cur in itertools.pairwise(diffs):
            assert cur["U"] == prev["u"] + 1 and cur["b"] + cur["a"]  # contiguous, non-empty
            assert cur["E"] - prev["E"] >= 90
        assert (rb.bids, rb.asks) == m.book_levels()
        assert len(rb.bids) > 100 and len(rb.asks) > 100


async def test_bookticker_ids_share_depth_id_space():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@bookTicker/btcusdt@depth@100ms"
                            "/btcusdt@depth5@100ms") as ws:
        await until(lambda: ex.connections and len(ex.connections[0].streams) == 3)
        ex.step(200)
        m = ex.market("BTCUSDT")
        target = m.update_id
        tickers, diffs, partial = [], [], None
        while not diffs or diffs[-1]["u"] < target or partial is None \
                or partial["lastUpdateId"] < target:
            frame = json.loads((await ws.receive(timeout=3)).data)
            data = frame["data"]
            if frame["stream"].endswith("bookTicker"):
                tickers.append(data)
            elif frame["stream"].endswith("depth5@100ms"):
                partial = data
            else:
                diffs.append(data)
        assert tickers and diffs
        lo, hi = diffs[0]["U"], diffs[-1]["u"]
        assert all(lo <= t["u"] <= hi for t in tickers)
        assert tickers[-1]["u"] <= target == hi == partial["lastUpdateId"]
        bids, _asks = m.book_levels()
        best_bid = max(bids, key=float)
        assert tickers[-1]["b"] == best_bid == partial["bids"][0][0]
        assert tickers[-1]["B"] == bids[best_bid]
