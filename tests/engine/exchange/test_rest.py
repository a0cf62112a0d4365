"""REST side of the local exchange: endpoints, weights, 429/418, error bodies."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange


@pytest.fixture
async def ex():
    cfg = ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=0, clock_offset_ms=-1500)
    async with LocalExchange(cfg) as exchange:
        exchange.step(3000)
        yield exchange



async def get(http, ex, path: str):
    async with http.get(f"{ex.rest_url}/api/v3/{path}") as r:
        return r.status, r.headers, json.loads(await r.text() or "null")


@pytest.mark.parametrize("path,weight", [
    ("ping", 1), ("time", 1), ("exchangeInfo", 20), ("depth?symbol=BTCUSDT", 5),
    ("depth?symbol=BTCUSDT&limit=101", 25), ("depth?symbol=BTCUSDT&limit=1000", 50),
    ("depth?symbol=BTCUSDT&limit=5000", 250), ("depth?symbol=BTCUSDT&limit=99999", 250),
    ("aggTrades?symbol=BTCUSDT", 4), ("trades?symbol=BTCUSDT", 25),
    ("historicalTrades?symbol=BTCUSDT", 25), ("klines?symbol=BTCUSDT&interval=1m", 2),
    ("ticker/bookTicker?symbol=BTCUSDT", 2), ("ticker/bookTicker", 4),
])
async def test_weights_and_header(ex, http, path, weight):
    before = ex.used_weight()
    status, headers, _ = await get(http, ex, path)
    assert status == 200
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) == before + weight == ex.used_weight()


async def test_ping_time_exchange_info(ex, http):
    assert (await get(http, ex, "ping"))[2] == {}
    t = (await get(http, ex, "time"))[2]["serverTime"]
    assert abs(t - (time.time() * 1000 - 1500)) < 1000  # clock_offset_ms applied
    _, _, info = await get(http, ex, "exchangeInfo")
    assert {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
            "limit": 6000} in info["rateLimits"]
    assert {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
            "limit": 300000} in info["rateLimits"]
    sym = {s["symbol"]: s for s in info["symbols"]}
    btc = sym["BTCUSDT"]
    assert btc["status"] == "TRADING" and btc["baseAsset"] == "BTC" and btc["quoteAsset"] == "USDT"
    assert btc["permissions"] == [] and btc["permissionSets"] == [["SPOT"]]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert "NOTIONAL" in filters
    _, _, one = await get(http, ex, "exchangeInfo?symbol=ETHUSDT")
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    _, _, two = await get(http, ex, 'exchangeInfo?symbols=%5B%22ETHUSDT%22,%22BTCUSDT%22%5D')
    assert [s["symbol"] for s in two["symbols"]] == ["ETHUSDT", "BTCUSDT"]


async def test_depth(ex, http):
    m = ex.market("BTCUSDT")
    _, _, d = await get(http, ex, "depth?symbol=BTCUSDT&limit=5000")
    assert d["lastUpdateId"] == m.update_id
    bids, asks = m.book_levels()
    assert dict(map(tuple, d["bids"])) == bids and dict(map(tuple, d["asks"])) == asks
    assert 300 < len(d["bids"]) <= 5000
    assert float(d["bids"][0][0]) > float(d["bids"][1][0])
    assert float(d["asks"][0][0]) < float(d["asks"][1][0])
    _, _, d = await get(http, ex, "depth?symbol=BTCUSDT")
    assert len(d["bids"]) == len(d["asks"]) == 100
    _, _, d = await get(http, ex, "depth?symbol=BTCUSDT&limit=7")
    assert len(d["bids"]) == 7


async def test_trades_agg_trades_klines(ex, http):
    m = ex.market("BTCUSDT")
    _, _, trades = await get(http, ex, "trades?symbol=BTCUSDT&limit=1000")
    assert len(trades) == min(1000, len(m.trades)) and trades[-1]["id"] == m.last_trade_id
    assert [t["id"] for t in trades] == list(range(trades[0]["id"], trades[-1]["id"] + 1))
    assert set(trades[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker",
                              "isBestMatch"}
    first = m.trades[0][0]
    _, _, hist = await get(http, ex, f"historicalTrades?symbol=BTCUSDT&fromId={first + 5}&limit=3")
    assert [t["id"] for t in hist] == [first + 5, first + 6, first + 7]
    _, _, aggs = await get(http, ex, "aggTrades?symbol=BTCUSDT&limit=1000")
    assert aggs[-1]["a"] == m.last_agg_id and list(aggs[0]) == ["a", "p", "q", "f", "l", "T",
                                                                  "m", "M"]
    for prev, cur in itertools.pairwise(aggs):
        assert cur["a"] == prev["a"] + 1 and cur["f"] == prev["l"] + 1
    a0 = aggs[0]["a"]
    _, _, some = await get(http, ex, f"aggTrades?symbol=BTCUSDT&fromId={a0}&limit=2")
    assert [a["a"] for a in some] == [a0, a0 + 1]
    t_mid = aggs[len(aggs) // 2]["T"]
    _, _, since = await get(http, ex, f"aggTrades?symbol=BTCUSDT&startTime={t_mid}&limit=5")
    assert since and all(a["T"] >= t_mid for a in since)
    _, _, kl = await get(http, ex, "klines?symbol=BTCUSDT&interval=1m&limit=10")
    assert kl and all(len(row) == 12 and row[11] == "0" for row in kl)
    assert sum(row[8] for row in kl) == len(m.trades)
    assert kl[-1][6] == kl[-1][0] + 60_000 - 1


@pytest.mark.parametrize("path,code,msg", [
    ("depth?symbol=NOPE", -1121, "Invalid symbol."),
    ("depth?symbol=btcusdt", -1100,
     "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."),
    ("depth", -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."),
    ("klines?symbol=BTCUSDT", -1102,
     "Mandatory parameter 'interval' was not sent, was empty/null, or malformed."),
    ("klines?symbol=BTCUSDT&interval=7m", -1120, "Invalid interval."),
    ("trades?symbol=NOPE", -1121, "Invalid symbol."),
    ("exchangeInfo?symbol=NOPE", -1121, "Invalid symbol."),
])
async def test_error_bodies(ex, http, path, code, msg):
    status, headers, body = await get(http, ex, path)
    assert status == 400 and body == {"code": code, "msg": msg}
    assert "X-MBX-USED-WEIGHT-1M" in headers


async def test_unknown_route_404(ex, http):
    status, headers, _ = await get(http, ex, "nosuchthing")
    assert status == 404 and "X-MBX-USED-WEIGHT-1M" in headers


async def test_429_then_418_ban():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, weight_limit=20, weight_window_s=3.0,
                         ban_seconds=2.0)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        # start right after a window boundary so the test cannot straddle windows
        await asyncio.sleep(3.0 - time.time() % 3.0 + 0.01)
        for _ in range(4):
            status, _, _ = await get(http, ex, "depth?symbol=BTCUSDT")
            assert status == 200
        status, headers, body = await get(http, ex, "depth?symbol=BTCUSDT")
        assert status == 429 and body["code"] == -1003
        assert body["msg"] == ("Too much request weight used; current limit is 20 request "
                               "weight per 1 MINUTE. Please use WebSocket Streams for live "
                               "updates to avoid polling the API.")
        assert 1 <= int(headers["Retry-After"]) <= 3
        assert headers["X-MBX-USED-WEIGHT-1M"] == "25"
        status, headers, body = await get(http, ex, "ping")
        assert status == 418 and body["code"] == -1003
        assert body["msg"].startswith("Way too much request weight used; IP banned until ")
        banned_until = int(body["msg"].split("until ")[1].split(".")[0])
        assert abs(banned_until - (time.time() * 1000 + 2000)) < 1000
        assert int(headers["Retry-After"]) == 2
        status, _, _ = await get(http, ex, "time")
        assert status == 418
