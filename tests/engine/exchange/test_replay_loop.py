"""Looped replay (benchmarks): ids stay contiguous pass after pass, a book stays whole, the
first pass is the recording byte for byte, and the exchange reports what it sent.

Expected values come from the recording file and Binance's documented book procedure
(``engine.exchange.testing.BookRebuilder``), not from the looping code.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from engine.exchange.replay import load_passes, ws_header
from engine.exchange.testing import BookRebuilder
from tests.helpers import SHARED, receive_texts, wait_until

REC = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"
if not REC.exists():
    pytest.skip("../shared (real recordings) is not available", allow_module_level=True)
LINES = [line.split(" ", 1) for line in REC.read_text().splitlines()]
FRAMES = [text for _, text in LINES if text.startswith('{"stream"')]
SNAPSHOT = json.loads(next(text for _, text in LINES if text.startswith('{"lastUpdateId"')))
STREAMS = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"


def data_of(text: str) -> dict:
    return json.loads(text)["data"]


def looped_frames() -> list[str]:
    """What a pass after the first holds: the recording less the bookTickers newer than
    its last diff (their ids would come again in the next pass)."""
    diffs = [data_of(f) for f in FRAMES if "@depth" in f]
    first_u, last_u = diffs[0]["U"], diffs[-1]["u"]
    return [f for f in FRAMES if "@bookTicker" not in f
            or first_u <= data_of(f)["u"] <= last_u]


async def receive_all(ws, n: int, timeout: float = 10.0) -> list[str]:
    return await receive_texts(ws, n, timeout)


async def test_three_passes_keep_every_id_contiguous_and_the_book_whole():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, recording=str(REC), replay_speed=0,
                         replay_loops=3)
    per_pass = looped_frames()
    assert len(per_pass) < len(FRAMES)  # the file ends with bookTickers past its last diff
    expected = len(FRAMES) + 2 * (1 + len(per_pass))  # passes 1 and 2 open with a bridge
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http:
        async with http.get(f"{ex.rest_url}/api/v3/depth?symbol=BTCUSDT") as r:
            assert await r.json() == SNAPSHOT
        async with http.ws_connect(f"{ex.ws_url}/stream?streams={STREAMS}",
                                   max_msg_size=1 << 24) as ws:
            got = await receive_all(ws, expected)
            await asyncio.wait_for(ex.replay_done.wait(), 5)
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.3)  # nothing after the third pass
            report = ex.report()
    assert got[:len(FRAMES)] == FRAMES  # the first pass: the recording, byte for byte
    assert report["replay_passes"] == 3
    assert [c["frames_sent"] for c in report["connections"]] == [expected]

    book = BookRebuilder()
    assert book.on_snapshot(SNAPSHOT)
    last: dict[str, int] = {}
    books = []
    for i, text in enumerate(got):
        stream, d = json.loads(text)["stream"], data_of(text)
        if stream.endswith("@trade"):
            assert d["t"] == last.get("t", d["t"] - 1) + 1, i
            last["t"] = d["t"]
        elif stream.endswith("@bookTicker"):
            assert d["u"] > last.get("bt", 0), i
            last["bt"] = d["u"]
        else:
            assert d["U"] == last.get("u", d["U"] - 1) + 1, i
            last["u"] = d["u"]
            if d["U"] == d["u"] and i >= len(FRAMES):  # a bridge opens each later pass
                books.append((dict(book.bids), dict(book.asks)))
            book.on_diff(d)
            if book.bids and book.asks:
                best_bid = max(float(p) for p in book.bids)
                assert best_bid < min(float(p) for p in book.asks), i  # never crossed
    books.append((dict(book.bids), dict(book.asks)))
    assert book.gaps == 0 and len(books) == 3
    assert books[0] == books[1] == books[2]  # each pass leaves the same book
    trades = [data_of(f)["t"] for f in FRAMES if "@trade" in f]
    assert last["t"] - trades[0] + 1 == 3 * len(trades)  # no trade id skipped or repeated


async def test_replay_seconds_ends_a_loop_and_the_report_counts_what_was_sent():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, recording=str(REC), replay_speed=0,
                         replay_loops=0, replay_seconds=0.5)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/stream?streams={STREAMS}",
                            max_msg_size=1 << 24) as ws:
        n = 0
        with pytest.raises(asyncio.TimeoutError):
            while True:
                msg = await ws.receive(timeout=1.0)  # until the replay has stopped
                assert msg.type == aiohttp.WSMsgType.TEXT
                n += 1
        assert ex.replay_done.is_set() and 0.4 < ex.replay_wall_s < 1.5
        (conn,) = ex.report()["connections"]
    assert conn["frames_sent"] == n > len(FRAMES) and conn["replies"] == 0
    assert conn["close_code"] is None and not conn["closed"]


async def test_a_held_replay_waits_for_release_and_stop_replay_ends_it():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, recording=str(REC), replay_speed=0,
                         replay_loops=0, replay_seconds=60, replay_hold=True)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/stream?streams={STREAMS}",
                            max_msg_size=1 << 24) as ws:
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.5)  # subscribed, but held
        ex.release_replay()
        assert (await ws.receive(timeout=5)).data == FRAMES[0]
        ex.stop_replay()
        await asyncio.wait_for(ex.replay_done.wait(), 5)
        assert ex.replay_wall_s < 5


async def test_control_replies_are_counted_apart_from_data():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0, recording=str(REC), replay_speed=0,
                         replay_loops=2)
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/ws", max_msg_size=1 << 24) as ws:
        await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"],
                                      "id": 7}))
        assert json.loads((await ws.receive(timeout=5)).data) == {"result": None, "id": 7}
        trades = [f for f in FRAMES if "@trade" in f]
        got = await receive_all(ws, 2 * len(trades))
        await wait_until(lambda: ex.replay_done.is_set(), 5)
        (conn,) = ex.report()["connections"]
    assert got[:len(trades)] == [f[len('{"stream":"btcusdt@trade","data":'):-1] for f in trades]
    assert conn["frames_sent"] == 1 + 2 * len(trades) and conn["replies"] == 1


async def test_prebuilt_frames_queued_before_a_fault_still_arrive_whole():
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=0)
    texts = ['{"a":1}', "x" * 200, "y" * 70_000]  # the three header lengths
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/ws", max_msg_size=1 << 24) as ws:
        await wait_until(lambda: len(ex.connections) == 1, 5)
        ex.faults.slow_drip(0.001)  # the writer goes frame by frame
        blob = b"".join(ws_header(len(t)) + t.encode() for t in texts)
        ex.connections[0].enqueue_frames(blob, len(texts))
        assert await receive_all(ws, 3) == texts
        assert ex.report()["connections"][0]["frames_sent"] == 3


def test_the_cache_is_used_only_for_the_file_it_was_built_from(tmp_path: Path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("\n".join(" ".join(ln) for ln in LINES[:400]) + "\n")
    b.write_text("\n".join(" ".join(ln) for ln in LINES[:900]) + "\n")
    cache = tmp_path / "passes"
    first = load_passes(a, cache, prepare=True)
    assert cache.exists()
    again = load_passes(a, cache, prepare=True)  # from the cache
    other = load_passes(b, cache, prepare=True)  # another file: built anew
    assert again.body == first.body and again.span == first.span
    assert again.chunk(0, 1, again.streams, True) == first.chunk(0, 1, first.streams, True)
    fresh = load_passes(b, None)
    assert other.body == fresh.body and len(other.body) > len(first.body)


def test_an_endless_loop_needs_a_time_limit():
    with pytest.raises(ValueError, match="replay_seconds"):
        LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=0, recording=str(REC),
                                     replay_loops=0))
