"""WebSocket side of the local exchange: payloads, envelopes, control protocol, limits."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import websockets

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import SHARED

REC = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"

KEYS = {
    "trade": ["e", "E", "s", "t", "p", "q", "T", "m", "M"],
    "aggTrade": ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"],
    "bookTicker": ["u", "s", "b", "B", "a", "A"],
    "depthUpdate": ["e", "E", "s", "U", "u", "b", "a"],
    "partial": ["lastUpdateId", "bids", "asks"],
    "kline": ["e", "E", "s", "k"],
    "k": ["t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"],
    "24hrMiniTicker": ["e", "E", "s", "c", "o", "h", "l", "v", "q"],
    "24hrTicker": ["e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A", "o", "h", "l",
                   "v", "q", "O", "C", "F", "L", "n"],
}


async def until(cond, timeout: float = 3.0) -> None:
    """Wait for a condition (polling the loop), failing after `timeout`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


async def recv_json(ws, timeout: float = 3.0):
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


def subscribed(ex: LocalExchange, n: int = 1):
    return lambda: len(ex.connections) >= n and all(c.streams for c in ex.connections)


@pytest.fixture
async def ex():
    cfg = ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=0, max_incoming_per_s=100)
    async with LocalExchange(cfg) as exchange:
        yield exchange



def _recorded_keys() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in REC.read_text().splitlines()[:200]:
        frame = json.loads(line.split(" ", 1)[1])
        if "stream" in frame:
            out.setdefault(frame["stream"].split("@", 1)[1], list(frame["data"]))
    return out


async def test_every_stream_payload_has_exact_keys(ex, http):
    names = ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth",
             "btcusdt@depth@100ms", "btcusdt@depth5", "btcusdt@depth10@100ms",
             "btcusdt@kline_1m", "btcusdt@kline_1s", "btcusdt@kline_1h@+08:00",
             "btcusdt@miniTicker", "btcusdt@ticker", "!miniTicker@arr"]
    async with http.ws_connect(f"{ex.ws_url}/stream?streams={'/'.join(names)}") as ws:
        await until(subscribed(ex))
        ex.step(300)
        seen: dict[str, dict] = {}
        closed_1s = None
        loop = asyncio.get_running_loop()
        end = loop.time() + 4.5
        while (len(seen) < len(names) or closed_1s is None) and loop.time() < end:
            frame = await recv_json(ws)
            assert list(frame) == ["stream", "data"]
            seen.setdefault(frame["stream"], frame["data"])
            if frame["stream"] == "btcusdt@kline_1s" and frame["data"]["k"]["x"]:
                closed_1s = frame["data"]
        assert set(seen) == set(names)
    rec = _recorded_keys()
    assert list(seen["btcusdt@trade"]) == KEYS["trade"] == rec["trade"]
    assert list(seen["btcusdt@bookTicker"]) == KEYS["bookTicker"] == rec["bookTicker"]
    assert list(seen["btcusdt@depth@100ms"]) == KEYS["depthUpdate"] == rec["depth@100ms"]
    assert list(seen["btcusdt@depth"]) == KEYS["depthUpdate"]
    assert list(seen["btcusdt@aggTrade"]) == KEYS["aggTrade"]
    for name in ("btcusdt@depth5", "btcusdt@depth10@100ms"):
        assert list(seen[name]) == KEYS["partial"]
    assert len(seen["btcusdt@depth5"]["bids"]) == 5
    assert len(seen["btcusdt@depth10@100ms"]["asks"]) == 10
    for name in ("btcusdt@kline_1m", "btcusdt@kline_1s", "btcusdt@kline_1h@+08:00"):
        assert list(seen[name]) == KEYS["kline"] and list(seen[name]["k"]) == KEYS["k"]
        assert seen[name]["k"]["B"] == "0"
    k = seen["btcusdt@kline_1h@+08:00"]["k"]
    assert (k["t"] + 8 * 3_600_000) % 3_600_000 == 0 and k["T"] == k["t"] + 3_600_000 - 1
    # rate=0 and no trades after the first step: the 1s candle that closed is empty
    assert closed_1s["k"]["x"] is True and closed_1s["E"] > closed_1s["k"]["T"]
    if closed_1s["k"]["n"] == 0:
        assert closed_1s["k"]["f"] == closed_1s["k"]["L"] == -1
    assert list(seen["btcusdt@miniTicker"]) == KEYS["24hrMiniTicker"]
    assert list(seen["btcusdt@ticker"]) == KEYS["24hrTicker"]
    arr = seen["!miniTicker@arr"]
    assert isinstance(arr, list) and {d["s"] for d in arr} == {"BTCUSDT", "ETHUSDT"}
    assert all(list(d) == KEYS["24hrMiniTicker"] for d in arr)
    assert seen["btcusdt@trade"]["p"].endswith(seen["btcusdt@trade"]["p"][-9:])
    assert len(seen["btcusdt@trade"]["p"].split(".")[1]) == 8


async def test_raw_then_set_property_combined(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await until(subscribed(ex))
        conn = ex.connections[0]
        assert conn.path == "/ws/btcusdt@trade" and conn.combined is False
        while conn.ex.market("BTCUSDT").last_trade_id == ex.market("BTCUSDT").spec.trade_id0:
            ex.step(10)
        ex.step(50)
        raw = await recv_json(ws)
        assert raw["e"] == "trade" and "stream" not in raw
        await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":1}')
        await ws.send_str('{"method":"SET_PROPERTY","params":["combined",true],"id":2}')
        await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":3}')
        replies = []
        while len(replies) < 3:
            msg = await recv_json(ws)
            if "id" in msg:
                replies.append(msg)
        assert replies == [{"result": False, "id": 1}, {"result": None, "id": 2},
                           {"result": True, "id": 3}]
        assert conn.combined is True
        last = ex.market("BTCUSDT").last_trade_id
        for _ in range(100):
            ex.step(20)
            if ex.market("BTCUSDT").last_trade_id > last:
                break
        while True:
            frame = await recv_json(ws)
            if "stream" in frame and frame["data"]["t"] > last:
                break
        assert frame["stream"] == "btcusdt@trade" and frame["data"]["e"] == "trade"


async def test_combined_connection_frames_are_envelopes_of_raw(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@bookTicker") as comb, \
            http.ws_connect(f"{ex.ws_url}/ws/btcusdt@bookTicker") as raw:
        await until(subscribed(ex, 2))
        ex.step(50)
        a = await comb.receive(timeout=3)
        b = await raw.receive(timeout=3)
        assert a.data == '{"stream":"btcusdt@bookTicker","data":' + b.data + "}"
        await comb.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":"x1"}')
        while (reply := await recv_json(comb)).get("id") != "x1":
            pass
        assert reply == {"result": True, "id": "x1"}


async def test_control_protocol_over_socket(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws") as ws:
        await until(lambda: len(ex.connections) == 1)
        conn = ex.connections[0]

        async def call(obj) -> dict:
            await ws.send_str(obj if isinstance(obj, str) else json.dumps(obj))
            return await recv_json(ws)

        assert await call({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade",
                                                             "btcusdt@depth"], "id": 1}) \
            == {"result": None, "id": 1}
        assert conn.streams == {"btcusdt@aggTrade", "btcusdt@depth"}
        assert await call({"method": "LIST_SUBSCRIPTIONS", "id": 3}) == \
            {"result": ["btcusdt@aggTrade", "btcusdt@depth"], "id": 3}
        assert await call({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth",
                                                               "btcusdt@aggTrade"], "id": 312}) \
            == {"result": None, "id": 312}
        assert conn.streams == set()
        assert await call({"method": "SUBSCRIBE", "params": ["btcusdt@bogus"], "id": 4}) == \
            {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 4}
        assert (await call("{oops"))["error"]["code"] == 3
        assert (await call({"method": "SET_PROPERTY", "params": ["x", True], "id": 5})) == \
            {"error": {"code": 0, "msg": "Unknown property"}, "id": 5}
        assert (await call({"method": "SET_PROPERTY", "params": ["combined", 1], "id": 6})) == \
            {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 6}
        assert conn.control_log[0] == {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade",
                                                                         "btcusdt@depth"], "id": 1}
        # A well-formed stream of an unknown symbol is accepted and delivers nothing.
        assert await call({"method": "SUBSCRIBE", "params": ["nosuchusdt@trade"], "id": 7}) == \
            {"result": None, "id": 7}
        ex.step(300)
        assert await call({"method": "LIST_SUBSCRIPTIONS", "id": 8}) == \
            {"result": ["nosuchusdt@trade"], "id": 8}


async def test_too_many_subscriptions_code_4():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, max_streams=2)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth",
                                                              "btcusdt@aggTrade"], "id": 1})
        assert await recv_json(ws) == {"error": {"code": 4, "msg": "Too many subscriptions"},
                                       "id": 1}
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@depth"], "id": 2})
        assert await recv_json(ws) == {"result": None, "id": 2}


async def test_more_than_5_messages_per_second_closes_1008():
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=0)) as ex, \
            aiohttp.ClientSession() as http, http.ws_connect(f"{ex.ws_url}/ws") as ws:
        for i in range(5):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
        for i in range(5):
            assert await recv_json(ws) == {"result": [], "id": i}
        await ws.ping(b"")  # the 6th message within one second (ping frames count)
        while (msg := await ws.receive(timeout=3)).type != aiohttp.WSMsgType.CLOSE:
            pass
        assert msg.data == 1008 and msg.extra == "Too many requests"


async def test_server_pings_and_drops_silent_client():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, ping_interval=0.15, pong_timeout=0.4)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        # websockets answers pings automatically: it stays connected.
        async with websockets.connect(f"{ex.ws_url}/ws/btcusdt@trade", ping_interval=None) as good:
            await until(lambda: ex.connections and ex.connections[0].pongs_received >= 3)
            assert good.state == websockets.protocol.State.OPEN
        # aiohttp with autoping=False sees the pings and never answers.
        async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade", autoping=False) as bad:
            pings = []
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while True:
                msg = await bad.receive(timeout=3)
                if msg.type == aiohttp.WSMsgType.PING:
                    pings.append(msg.data)
                    continue
                break
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
            assert pings and all(p for p in pings)  # pings carry a payload
            assert 0.4 <= loop.time() - t0 < 2.0


async def test_server_answers_client_ping_with_same_payload(ex, http):
    async with http.ws_connect(f"{ex.ws_url}/ws", autoping=False) as ws:
        await ws.ping(b"hello")
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.PONG and msg.data == b"hello"


async def test_lifetime_close_with_optional_notice():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, lifetime=0.3, lifetime_notice=True)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{ex.ws_url}/stream?streams=btcusdt@trade") as ws:
            frame = await recv_json(ws, timeout=3)
            assert frame["stream"] == "!serverShutdown" and frame["data"]["e"] == "serverShutdown"
            msg = await ws.receive(timeout=3)
            assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
        async with http.ws_connect(f"{ex.ws_url}/ws/btcusdt@trade") as ws:
            frame = await recv_json(ws, timeout=3)
            assert list(frame) == ["e", "E"] and frame["e"] == "serverShutdown"


async def test_url_decoding_and_time_unit(ex, http):
    url = (f"{ex.ws_url}/stream?streams=btcusdt%40trade%2Fbtcusdt%40kline_1m%40%2B08%3A00"
           f"&timeUnit=MICROSECOND")
    async with http.ws_connect(url) as ws, http.ws_connect(f"{ex.ws_url}/ws/btcusdt%40trade"):
        await until(subscribed(ex, 2))
        streams = sorted((c.path, tuple(sorted(c.streams))) for c in ex.connections)
        assert streams == [("/stream", ("btcusdt@kline_1m@+08:00", "btcusdt@trade")),
                           ("/ws/btcusdt@trade", ("btcusdt@trade",))]
        for _ in range(100):
            ex.step(10)
            if any(c.queue or c.ex.stats.frames_sent for c in ex.connections):
                break
        while (frame := await recv_json(ws))["stream"] != "btcusdt@trade":
            pass
        assert len(str(frame["data"]["E"])) == 16 and frame["data"]["E"] == frame["data"]["T"]


async def test_bad_stream_in_url_is_rejected(ex, http):
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await http.ws_connect(f"{ex.ws_url}/ws/btcusdt@nonsense")
    assert err.value.status == 400


async def test_ccxt_style_paths_open_raw_connections(ex, http):
    """ccxt connects to <ws.spot>/<n> with Binance's host kept in the path, then SUBSCRIBEs."""
    for url in (f"{ex.ws_url}/ws/0", f"{ex.ws_url}/stream.binance.com/ws/3",
                f"{ex.ws_url}/stream.binance.com/ws"):
        async with http.ws_connect(url) as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 1})
            assert await recv_json(ws) == {"result": None, "id": 1}
            for _ in range(1000):
                ex.step(10)
                if any(c.queue for c in ex.connections):
                    break
            frame = await recv_json(ws)
            assert frame["e"] == "trade" and "stream" not in frame  # raw: the bare payload
    async with http.ws_connect(f"{ex.ws_url}/stream.binance.com/stream?streams=btcusdt@trade"):
        pass
    resp = await http.get(f"{ex.ws_url}/wsx")
    assert resp.status == 404
