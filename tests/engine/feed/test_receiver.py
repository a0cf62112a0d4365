"""The receive path (decode → id gate → bus) driven with frames directly: what every
connection and every benchmark runs."""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from engine.binance.control import ControlReply
from engine.bus import Bus
from engine.events import LedgerEntry, ServerShutdown, Trade
from engine.feed.decode import FrameDecoder
from engine.feed.gate import IdGate
from engine.feed.receiver import Receiver


def trade_frame(i: int) -> bytes:
    data = {"e": "trade", "E": 1, "s": "BTCUSDT", "t": i, "p": "1.0", "q": "1.0", "T": 1,
            "m": False, "M": True}
    return msgspec.json.encode({"stream": "btcusdt@trade", "data": data})


def receiver() -> tuple[Receiver, list[Any]]:
    bus = Bus()
    got: list[Any] = []
    bus.subscribe(got.append, kinds=[Trade, LedgerEntry, ServerShutdown], mode="inline")
    return Receiver(FrameDecoder(), IdGate(), bus), got


def test_frames_become_gated_events_on_the_bus() -> None:
    rx, got = receiver()
    special: list[Any] = []
    assert rx.receive([trade_frame(1), trade_frame(2)], 5, 7, special) == 2
    assert rx.receive([trade_frame(2), trade_frame(5)], 6, 8, special) == 2  # dup, gap
    assert [(type(e).__name__, getattr(e, "trade_id", None)) for e in got] == [
        ("Trade", 1), ("Trade", 2), ("LedgerEntry", None), ("Trade", 5)]
    assert (got[0].recv_ns, got[0].conn) == (5, 7)
    assert got[2].what == "gap" and (got[2].first_missing, got[2].last_missing) == (3, 4)
    assert special == [] and rx.errors == 0


def test_control_replies_and_shutdowns_are_set_aside_for_the_connection() -> None:
    rx, got = receiver()
    special: list[Any] = []
    shutdown = b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1}}'
    n = rx.receive([b'{"result":null,"id":3}', shutdown, trade_frame(1)], 1, 1, special)
    assert n == 1  # one market event: the shutdown notice is not market data
    assert [type(e) for e in special] == [ControlReply, ServerShutdown]
    assert [type(e) for e in got] == [ServerShutdown, Trade]  # the notice is published too


def test_the_raw_tap_sees_every_frame_of_every_read() -> None:
    rx, _ = receiver()
    taps: list[tuple[int, int, int]] = []
    rx.raw_tap = lambda frames, ns, conn: taps.append((len(frames), ns, conn))
    rx.receive([trade_frame(1), b"not json"], 9, 2, [])
    assert taps == [(2, 9, 2)]


def test_a_bug_downstream_is_counted_and_logged_once_not_raised(caplog) -> None:
    rx, _ = receiver()

    def broken(events: Any, out: Any) -> None:
        raise RuntimeError("gate bug")

    rx._filter = broken  # noqa: SLF001 - simulating a bug in the gate
    with caplog.at_level(logging.ERROR):
        for i in range(3):
            assert rx.receive([trade_frame(i)], 1, 1, []) == 1
    assert rx.errors == 3 and rx.error_kinds == {"publishing: RuntimeError": 3}
    assert sum("publishing failed" in r.message for r in caplog.records) == 1
