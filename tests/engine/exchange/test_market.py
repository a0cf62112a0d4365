"""Pure (socket-free) tests of the exchange's matching engine, candles, grammar and limiter."""

from __future__ import annotations

import itertools
import json

import pytest

from engine.exchange import klines as kl
from engine.exchange.config import default_spec
from engine.exchange.control import handle
from engine.exchange.fixed import fmt8, fmt_ratio, parse8
from engine.exchange.market import EV_AGG, EV_TRADE, Market
from engine.exchange.ratelimit import WeightLimiter
from engine.exchange.streams import parse_stream
from engine.exchange.testing import BookRebuilder

T0 = 1_723_161_255_000


def run(m: Market, ops: int, t0: int = T0, per_ms: int = 7) -> list:
    events = []
    for i in range(ops):
        m.step(t0 + i * per_ms)
        events += m.drain()
    return events


def test_fixed_point_formatting():
    assert fmt8(6_183_763_000_000) == "61837.63000000"
    assert fmt8(0) == "0.00000000"
    assert fmt8(-5) == "-0.00000005"
    assert parse8("0.00001") == 1000
    assert parse8("61837.63") == 6_183_763_000_000
    assert fmt_ratio(1, 3, 3) == "0.333"
    assert fmt_ratio(-2, 3, 2) == "-0.67"


def test_deterministic_with_seed():
    a = Market(default_spec("BTCUSDT"), seed=7, now_ms=T0)
    b = Market(default_spec("BTCUSDT"), seed=7, now_ms=T0)
    run(a, 500)
    run(b, 500)
    assert a.book_levels() == b.book_levels()
    assert a.update_id == b.update_id and a.last_trade_id == b.last_trade_id
    c = Market(default_spec("BTCUSDT"), seed=8, now_ms=T0)
    run(c, 500)
    assert c.book_levels() != a.book_levels()


def test_initial_book_is_deep_and_uncrossed():
    m = Market(default_spec("ETHUSDT"), seed=1, now_ms=T0)
    bids, asks = m.book_levels()
    assert len(bids) >= 500 and len(asks) >= 500
    assert max(map(float, bids)) < min(map(float, asks))
    uid, b, a = m.depth(5000)
    assert uid == m.update_id and len(b) == len(bids)
    assert [float(p) for p, _ in b] == sorted((float(p) for p, _ in b), reverse=True)
    assert [float(p) for p, _ in a] == sorted(float(p) for p, _ in a)
    assert all(len(q.split(".")[1]) == 8 for _, q in b[:50])


def test_trade_and_agg_ids_contiguous_and_chained():
    m = Market(default_spec("BTCUSDT"), seed=3, now_ms=T0)
    events = run(m, 5000)
    trades = [e[2] for e in events if e[0] == EV_TRADE]
    aggs = [e[2] for e in events if e[0] == EV_AGG]
    assert len(trades) > 300 and len(aggs) > 200
    assert [t[0] for t in trades] == list(range(trades[0][0], trades[0][0] + len(trades)))
    assert [a[0] for a in aggs] == list(range(aggs[0][0], aggs[0][0] + len(aggs)))
    assert aggs[0][3] == trades[0][0] and aggs[-1][4] == trades[-1][0]
    for prev, cur in itertools.pairwise(aggs):
        assert cur[3] == prev[4] + 1
    by_id = {t[0]: t for t in trades}
    for a in aggs:  # an aggTrade = fills of one taker at one price
        fills = [by_id[i] for i in range(a[3], a[4] + 1)]
        assert {f[1] for f in fills} == {a[1]} and sum(f[2] for f in fills) == a[2]
        assert {f[4] for f in fills} == {a[6]}
    assert any(a[4] > a[3] for a in aggs), "some aggTrades must group several fills"
    assert m.last_trade_id == trades[-1][0] and m.last_agg_id == aggs[-1][0]


def test_book_rebuilt_from_diffs_matches():
    m = Market(default_spec("BTCUSDT"), seed=5, now_ms=T0)
    run(m, 300)
    m.reset_diffs()
    uid, b, a = m.depth(5000)
    rb = BookRebuilder()
    rb.on_snapshot({"lastUpdateId": uid, "bids": b, "asks": a})
    for i in range(40):
        run(m, 100, T0 + i * 1000)
        for speed in (0, 1):
            diff = m.take_diff(speed)
            if speed == 1 and diff is not None:
                rb.on_diff({"U": diff[0], "u": diff[1], "b": diff[2], "a": diff[3]})
    assert rb.gaps == 0 and rb.book_id == m.update_id
    assert (rb.bids, rb.asks) == m.book_levels()


def test_skip_update_id_makes_a_gap():
    m = Market(default_spec("BTCUSDT"), seed=5, now_ms=T0)
    run(m, 10)
    d1 = m.take_diff(1)
    m.skip_update_id()
    run(m, 10)
    d2 = m.take_diff(1)
    assert d1 and d2 and d2[0] == d1[1] + 2 and d2[1] >= d2[0]


def test_candles_consistent_with_trades():
    m = Market(default_spec("BTCUSDT"), seed=2, now_ms=T0)
    events = run(m, 20_000, per_ms=13)  # ~4.3 minutes of flow
    trades = [e[2] for e in events if e[0] == EV_TRADE]
    now = trades[-1][3]
    for iv in ("1s", "1m", "3m", "1h"):
        rows = m.klines(iv, 0, None, None, 1000, now)
        assert rows, iv
        assert sum(k[kl.N] for k in rows) == len(trades)
        assert sum(k[kl.V] for k in rows) == sum(t[2] for t in trades)
        for prev, k in itertools.pairwise(rows):
            assert k[kl.T] == kl.bucket_next(iv, prev[kl.T])
        for k in rows:
            inside = [t for t in trades if k[kl.T] <= t[3] < kl.bucket_next(iv, k[kl.T])]
            if not inside:
                assert k[kl.F] == k[kl.LAST] == -1 and k[kl.O] == k[kl.C]
                continue
            assert (k[kl.F], k[kl.LAST]) == (inside[0][0], inside[-1][0])
            assert k[kl.O] == inside[0][1] and k[kl.C] == inside[-1][1]
            assert k[kl.H] == max(t[1] for t in inside) and k[kl.L] == min(t[1] for t in inside)
            assert k[kl.TV] == sum(t[2] for t in inside if not t[4])
    st = m.stats(now)
    assert st["n"] == len(trades) and st["F"] == trades[0][0] and st["L"] == trades[-1][0]


def test_bucket_alignment():
    t = 1_723_161_255_208  # 2024-08-08T23:54:15.208Z
    assert kl.bucket_start("1m", t) == 1_723_161_240_000
    assert kl.bucket_start("1d", t) == 1_723_075_200_000
    assert kl.bucket_start("1d", t, kl.TZ8) == 1_723_132_800_000  # 2024-08-09 00:00 +08
    assert kl.bucket_start("1w", t) == 1_722_816_000_000  # Monday 2024-08-05
    assert kl.bucket_start("1M", t) == 1_722_470_400_000  # 2024-08-01
    assert kl.bucket_next("1M", 1_722_470_400_000) == 1_725_148_800_000


@pytest.mark.parametrize("name,kind", [
    ("btcusdt@trade", "trade"), ("btcusdt@aggTrade", "aggTrade"),
    ("btcusdt@bookTicker", "bookTicker"), ("btcusdt@depth", "depth"),
    ("btcusdt@depth@100ms", "depth"), ("btcusdt@depth20@100ms", "partial"),
    ("btcusdt@kline_1M", "kline"), ("btcusdt@kline_1m@+08:00", "kline"),
    ("btcusdt@miniTicker", "miniTicker"), ("btcusdt@ticker", "ticker"),
    ("!miniTicker@arr", "allMini"), ("nosuchsym@trade", "trade"),
])
def test_stream_grammar_valid(name, kind):
    st = parse_stream(name)
    assert st is not None and st.kind == kind


@pytest.mark.parametrize("name", ["btcusdt@trades", "BTCUSDT@trade", "btcusdt", "@trade",
                                  "btcusdt@kline_7m", "btcusdt@depth15", "btcusdt@depth@250ms",
                                  "btcusdt@kline_1m@+09:00", ""])
def test_stream_grammar_invalid(name):
    assert parse_stream(name) is None


def _reply(text, streams=None, combined=False, max_streams=1024):
    out = handle(text, dict.fromkeys(streams or []), combined, max_streams)
    return json.loads(out.reply), out


def test_control_success_replies():
    r, out = _reply('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","btcusdt@depth"],"id":1}')
    assert r == {"result": None, "id": 1} and out.subscribe == ["btcusdt@aggTrade", "btcusdt@depth"]
    r, out = _reply('{"method":"UNSUBSCRIBE","params":["btcusdt@depth"],"id":312}',
                    ["btcusdt@depth"])
    assert r == {"result": None, "id": 312} and out.unsubscribe == ["btcusdt@depth"]
    r, _ = _reply('{"method":"LIST_SUBSCRIPTIONS","id":3}', ["btcusdt@aggTrade"])
    assert r == {"result": ["btcusdt@aggTrade"], "id": 3}
    r, out = _reply('{"method":"SET_PROPERTY","params":["combined",true],"id":5}')
    assert r == {"result": None, "id": 5} and out.combined is True
    r, _ = _reply('{"method":"GET_PROPERTY","params":["combined"],"id":2}', combined=True)
    assert r == {"result": True, "id": 2}
    for rid in ('"abcDEF123"', "null", str(2**63 - 1), str(-(2**63))):
        r, _ = _reply(f'{{"method":"LIST_SUBSCRIPTIONS","id":{rid}}}')
        assert r["id"] == json.loads(rid) and "error" not in r


@pytest.mark.parametrize("text,code,msg", [
    ('{"method":"SET_PROPERTY","params":["foo",true],"id":1}', 0, "Unknown property"),
    ('{"method":"GET_PROPERTY","params":["foo"],"id":1}', 0, "Unknown property"),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":1}', 1,
     "Invalid value type: expected Boolean"),
    ('{"method":"SET_PROPERTY","params":[5,true],"id":1}', 2,
     "Invalid request: property name must be a string"),
    ('{"method":"SET_PROPERTY","params":["combined",true,1],"id":1}', 2,
     "Invalid request: too many parameters"),
    ('{"method":"LIST_SUBSCRIPTIONS","params":["x"],"id":1}', 2,
     "Invalid request: too many parameters"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@nope"],"id":1}', 2,
     "Invalid request: invalid stream"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":"has space"}', 2,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":' + str(2**63) + "}", 2,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":"' + "a" * 37 + '"}', 2,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":true}', 2,
     "Invalid request: request ID must be an unsigned integer"),
    ('{"params":["btcusdt@trade"],"id":3}', 2,
     "Invalid request: missing field `method` at line 1 column 35"),
    ('{"method":"SUBSCRIPTIONS","id":1}', 2,
     "Invalid request: unknown variant `SUBSCRIPTIONS`, expected one of `SUBSCRIBE`, "
     "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY` at line 1 column 25"),
    ('{"method":"SUBSCRIBE",', 3, "Invalid JSON: expected value at line 1 column 23"),
    ("not json", 3, "Invalid JSON: expected value at line 1 column 1"),
])
def test_control_error_codes(text, code, msg):
    r, _ = _reply(text)
    assert r["error"] == {"code": code, "msg": msg}
    assert set(r) == {"error", "id"}


def test_control_too_many_subscriptions():
    r, out = _reply('{"method":"SUBSCRIBE","params":["btcusdt@trade","ethusdt@trade"],"id":9}',
                    ["bnbusdt@trade"], max_streams=2)
    assert r == {"error": {"code": 4, "msg": "Too many subscriptions"}, "id": 9}
    assert out.subscribe == []


def test_weight_limiter_429_then_418_with_doubling():
    lim = WeightLimiter(limit=10, window_s=60.0, ban_s=120.0)
    t = 6000.0  # start of a window
    assert lim.charge("a", 6, t).status == 200
    v = lim.charge("a", 6, t + 1)
    assert v.status == 429 and v.retry_after == 59 and v.used == 12
    v = lim.charge("a", 1, t + 2)
    assert v.status == 418 and v.retry_after == 120
    assert lim.charge("a", 1, t + 3).status == 418  # still banned
    assert lim.charge("b", 1, t + 3).status == 200  # per IP
    t2 = t + 180.0  # later window, ban over
    assert lim.charge("a", 11, t2).status == 429
    v = lim.charge("a", 1, t2 + 1)
    assert v.status == 418 and v.retry_after == 240  # repeat offender: doubled


def test_dashed_uuid_ids_are_accepted_like_binance_sdk_sends_them() -> None:
    uid = "0f8e4c1a-6b7d-4e2f-9a3b-5c6d7e8f9a0b"
    r, _ = _reply('{"method":"LIST_SUBSCRIPTIONS","id":"' + uid + '"}')
    assert r == {"result": [], "id": uid}
    r, _ = _reply('{"method":"LIST_SUBSCRIPTIONS","id":"' + uid + 'x"}')  # 37 chars
    assert r["error"]["code"] == 2
