"""Hand-built frames through ``FrameDecoder``: counters, per-stream routes and batch order.

The real-data suite (``test_decode_realdata.py``) checks field values against real frames;
these small cases pin what it cannot see: per-stream message counts and the unknown-stream
route (the status panel shows both), the diagnostic in ``stats.last_error``, the defaults of
``recv_ns``/``conn``, and that ``decode_batch`` keeps going after every kind of frame it
skips or flattens. Every expected value below is written out by hand.
"""

from __future__ import annotations

import pytest

from engine.binance.control import ControlReply
from engine.binance.streams import StreamRef
from engine.events import MiniTicker, PartialDepth, ServerShutdown, Trade
from engine.feed.decode import FrameDecoder

E, T = 1700000000000, 1700000000001
TRADE_DATA = (b'{"e":"trade","E":1700000000000,"s":"BTCUSDT","t":%d,"p":"42000.10","q":"0.5",'
              b'"T":1700000000001,"m":true,"M":true}')


def trade_frame(trade_id: int, stream: bytes = b"btcusdt@trade") -> bytes:
    return b'{"stream":"' + stream + b'","data":' + TRADE_DATA % trade_id + b"}"


def reordered_trade_frame(trade_id: int) -> bytes:
    """A combined frame whose ``stream`` key comes last: the slow path re-routes it."""
    return b'{"data":' + TRADE_DATA % trade_id + b',"stream":"btcusdt@trade"}'


def trade(trade_id: int, recv_ns: int, conn: int, symbol: str = "BTCUSDT") -> Trade:
    return Trade(event_time=E, symbol=symbol, trade_id=trade_id, price=42000.1, qty=0.5,
                 trade_time=T, buyer_is_maker=True, best_match=True, recv_ns=recv_ns,
                 conn=conn)


MINI = (b'{"e":"24hrMiniTicker","E":5,"s":"%s","c":"2.5","o":"1.5","h":"3","l":"0.5",'
        b'"v":"10","q":"20"}')


def mini(symbol: str, recv_ns: int, conn: int) -> MiniTicker:
    return MiniTicker(event_time=5, symbol=symbol, close=2.5, open=1.5, high=3.0, low=0.5,
                      volume=10.0, quote_volume=20.0, recv_ns=recv_ns, conn=conn)


def batch(dec: FrameDecoder, frames: list[bytes], recv_ns: int,
          conn: int) -> tuple[list[object], list[object]]:
    out: list[object] = []
    special: list[object] = []
    dec.decode_batch(frames, recv_ns, conn, out, special)
    return out, special


# (frame, events it yields into ``out``, into ``special``, bad, unknown, control, last_error)
# recv_ns=9, conn=3 throughout. A last_error ending in ":" is a prefix (msgspec's text follows);
# one in backticks must appear in it (msgspec names the missing key).
LEADS = {
    "truncated-name": (b'{"stream":"btcusdt@tra', [], [], 1, 0, 0, "truncated stream name"),
    "undecodable-name": (b'{"stream":"\xff\xfe","data":{}}', [], [], 1, 0, 0,
                         "undecodable stream name"),
    "unknown-stream": (b'{"stream":"nosuch","data":{}}', [], [], 0, 1, 0, ""),
    "bad-payload": (b'{"stream":"btcusdt@trade","data":{"e":"trade"}}', [], [], 1, 0, 0,
                    "btcusdt@trade:"),
    "array-stream": (b'{"stream":"!miniTicker@arr","data":[' + MINI % b"ETHUSDT" + b","
                     + MINI % b"BNBUSDT" + b"]}",
                     [mini("ETHUSDT", 9, 3), mini("BNBUSDT", 9, 3)], [], 0, 0, 0, ""),
    "partial-depth": (b'{"stream":"ethusdt@depth5","data":{"lastUpdateId":77,'
                      b'"bids":[["1.5","2"]],"asks":[["1.6","3"]]}}',
                      [PartialDepth(last_update_id=77, bids=[(1.5, 2.0)], asks=[(1.6, 3.0)],
                                    symbol="ETHUSDT", recv_ns=9, conn=3)], [], 0, 0, 0, ""),
    "server-shutdown": (b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":4}}',
                        [ServerShutdown(event_time=4, recv_ns=9, conn=3)],
                        [ServerShutdown(event_time=4, recv_ns=9, conn=3)], 0, 0, 0, ""),
    "raw-not-json": (b"not json", [], [], 1, 0, 0, "not a JSON object:"),
    "raw-unknown-event": (b'{"e":"nosuch","E":1}', [], [], 0, 1, 0, ""),
    "raw-trade": (TRADE_DATA % 5, [trade(5, 9, 3)], [], 0, 0, 0, ""),
    "raw-array": (b"[" + MINI % b"ETHUSDT" + b"]", [], [], 1, 0, 0, "not a JSON object:"),
    "control-reply": (b'{"result":null,"id":12}', [], [ControlReply(id=12, result=None)],
                      0, 0, 1, ""),
    "bad-control-reply": (b'{"id":12,"error":"boom"}', [], [], 1, 0, 0, "control reply:"),
    "reordered-missing-data": (b'{"id":1,"stream":"btcusdt@trade"}', [], [], 1, 0, 0,
                               "`data`"),
}


def _check_last_error(got: str, want: str) -> None:
    if want.endswith(":"):
        assert got.startswith(want + " ") and len(got) > len(want) + 1, got
    elif want.startswith("`"):
        assert want in got, got
    else:
        assert got == want


@pytest.mark.parametrize("lead", list(LEADS))
def test_batch_keeps_decoding_after_each_kind_of_frame(lead: str) -> None:
    """Whatever a frame is (skipped, flattened, set aside), the next one is still decoded."""
    frame, events, special_want, bad, unknown, control, last_error = LEADS[lead]
    dec = FrameDecoder()
    out, special = batch(dec, [frame, trade_frame(1), frame, trade_frame(2)], 9, 3)
    assert out == [*events, trade(1, 9, 3), *events, trade(2, 9, 3)]
    assert special == special_want * 2
    s = dec.stats
    assert (s.frames, s.bad_frames, s.unknown_streams, s.control_replies) == \
        (4, 2 * bad, 2 * unknown, 2 * control)
    _check_last_error(s.last_error, last_error)
    assert dec.stats.routes["btcusdt@trade"].messages == 2


@pytest.mark.parametrize("lead", list(LEADS))
def test_decode_one_frame_of_each_kind(lead: str) -> None:
    frame, events, special_want, bad, unknown, control, last_error = LEADS[lead]
    dec = FrameDecoder()
    # decode() returns the array as a list, else the one event or control reply, else None
    want = events if lead == "array-stream" else (events or special_want or [None])[0]
    assert dec.decode(frame, 9, 3) == want
    s = dec.stats
    assert (s.frames, s.bad_frames, s.unknown_streams, s.control_replies) == \
        (1, bad, unknown, control)
    _check_last_error(s.last_error, last_error)


@pytest.mark.parametrize("how", ["decode", "batch"])
def test_messages_and_last_recv_ns_are_counted_per_stream(how: str) -> None:
    """``Route.messages``/``last_recv_ns`` feed the per-stream status rows."""
    dec = FrameDecoder()
    reads = [(100, [trade_frame(1), trade_frame(2, b"ethusdt@trade")]),
             (200, [trade_frame(3)]), (300, [trade_frame(4)])]
    for recv_ns, frames in reads:
        if how == "decode":
            for frame in frames:
                dec.decode(frame, recv_ns, 1)
        else:
            batch(dec, frames, recv_ns, 1)
    routes = dec.stats.routes
    assert sorted(routes) == ["btcusdt@trade", "ethusdt@trade"]
    assert (routes["btcusdt@trade"].messages, routes["btcusdt@trade"].last_recv_ns) == (3, 300)
    assert (routes["ethusdt@trade"].messages, routes["ethusdt@trade"].last_recv_ns) == (1, 100)


def test_reordered_envelopes_share_one_route_and_its_count() -> None:
    dec = FrameDecoder()
    assert dec.decode(reordered_trade_frame(1), 10, 2) == trade(1, 10, 2)
    assert dec.decode(reordered_trade_frame(2), 20, 2) == trade(2, 20, 2)
    assert dec.decode(trade_frame(3), 30, 2) == trade(3, 30, 2)
    route = dec.stats.routes["btcusdt@trade"]
    assert (route.messages, route.last_recv_ns) == (3, 30)
    assert dec.route("btcusdt@trade") is route
    assert dec.route("btcusdt@trade") is route


@pytest.mark.parametrize("how", ["decode", "batch", "reordered"])
def test_unknown_stream_is_listed_with_kind_unknown_and_no_symbol(how: str) -> None:
    dec = FrameDecoder()
    if how == "decode":
        assert dec.decode(b'{"stream":"foo@bar","data":{}}') is None
    elif how == "batch":
        assert batch(dec, [b'{"stream":"foo@bar","data":{}}'], 1, 1) == ([], [])
    else:
        assert dec.decode(b'{"data":{},"stream":"foo@bar"}') is None
    assert dec.stats.unknown_streams == 1
    route = dec.stats.routes["foo@bar"]
    assert route.ref == StreamRef("foo@bar", "unknown", "")
    assert (route.decoder, route.messages, route.last_recv_ns) == (None, 0, 0)


def test_recv_ns_and_conn_default_to_zero() -> None:
    dec = FrameDecoder()
    assert dec.decode(trade_frame(1)) == trade(1, 0, 0)
    assert dec.decode(TRADE_DATA % 2) == trade(2, 0, 0)
    assert dec.decode_payload(TRADE_DATA % 3, Trade) == trade(3, 0, 0)
    assert dec.decode_payload(TRADE_DATA % 4, Trade, 8, 6) == trade(4, 8, 6)
