"""Make-before-break rollover and redundant connections: zero gap, zero duplicate.

Real loopback sockets against the local exchange. The exchange's connection lifetime is
cut to seconds; what the engine published is compared with every trade / diff id the
exchange wrote to any socket (``record_sent``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.engine import Engine
from engine.events import DepthUpdate, LedgerEntry, Trade
from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import settings_for, wait_until

STREAMS = (("streams.depthUpdate.enabled", True), ("streams.kline.enabled", False),
           ("streams.depthPartial.enabled", False))


class Collector:
    def __init__(self, engine: Engine) -> None:
        self.trades: list[int] = []
        self.diffs: list[tuple[int, int]] = []
        self.conns: set[int] = set()
        self.feed: list[LedgerEntry] = []
        engine.bus.subscribe(self.on_event, kinds=[Trade, DepthUpdate], name="collect",
                             mode="inline")
        engine.bus.subscribe(self.feed.append, kinds=[LedgerEntry], name="ledger",
                             mode="inline")

    def on_event(self, e: Any) -> None:
        self.conns.add(e.conn)
        if type(e) is Trade:
            self.trades.append(e.trade_id)
        else:
            self.diffs.append((e.first_update_id, e.final_update_id))

    def what(self, what: str) -> list[LedgerEntry]:
        return [f for f in self.feed if f.what == what]


def sent_ids(ex: LocalExchange) -> tuple[set[int], set[tuple[int, int]]]:
    trades: set[int] = set()
    diffs: set[tuple[int, int]] = set()
    for _, text in ex.sent_log:
        if not text.startswith('{"stream":'):
            continue
        frame = json.loads(text)
        data = frame["data"]
        if frame["stream"] == "btcusdt@trade":
            trades.add(data["t"])
        elif frame["stream"] == "btcusdt@depth@100ms":
            diffs.add((data["U"], data["u"]))
    return trades, diffs


def assert_lossless(col: Collector, ex: LocalExchange, engine: Engine) -> None:
    trades = col.trades
    assert len(trades) == len(set(trades)), "no trade published twice"
    assert trades == list(range(trades[0], trades[0] + len(trades))), "contiguous trade ids"
    sent_trades, sent_diffs = sent_ids(ex)
    # everything any connection received after our first trade, we published: once
    assert {t for t in sent_trades if t >= trades[0]} <= set(trades)
    assert set(trades) <= sent_trades
    for (_, u), (nxt, _) in zip(col.diffs, col.diffs[1:], strict=False):
        assert nxt == u + 1, "diff depth continues exactly"
    assert len(col.diffs) == len(set(col.diffs))
    assert {d for d in sent_diffs if d[0] >= col.diffs[0][0]} <= set(col.diffs)
    gate = engine.live.gate
    assert gate.gaps == 0 and col.what("gap") == [], [
        (g.first_missing, g.last_missing, g.stream) for g in col.what("gap")]


async def stop(engine: Engine, ex: LocalExchange) -> None:
    ex.pause()
    await engine.stop()


@pytest.mark.timeout(30)
async def test_rollover_before_the_lifetime_is_gapless_and_duplicate_free() -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=3, record_sent=True)
    async with LocalExchange(cfg) as ex:
        ex.faults.set_lifetime(2.5, existing=True)  # the server would close at 2.5 s
        engine = Engine(settings_for(ex, *STREAMS, rollover_after_s=1.0))
        col = Collector(engine)
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: shard.rollovers >= 3, 9, "three rollovers")
        await wait_until(lambda: len(col.conns) >= 4, 3, "data from the 4th connection")
        assert shard.reconnects == 0, "no connection was lost: each was replaced first"
        status = engine.status().connections[0]
        assert status.rollovers >= 3 and status.link == 0 and 0 <= status.rollover_in_s <= 1.0
        await stop(engine, ex)
    assert primary.server_shutdowns == 0
    assert len(col.what("rollover")) == shard.rollovers
    assert engine.live.gate.duplicates > 0, "the connections overlapped"
    assert_lossless(col, ex, engine)


@pytest.mark.timeout(30)
async def test_server_shutdown_rolls_over_before_the_server_closes() -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=4, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, *STREAMS))
        col = Collector(engine)
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: len(col.trades) > 20, 5, "data")
        for n in range(1, 4):
            first = primary.conn_id
            ex.faults.server_shutdown(close_after_s=0.5)  # notice, then 1001 after 0.5 s
            await wait_until(lambda n=n, f=first: shard.rollovers == n and primary.conn_id != f, 3,
                             f"rollover {n}")
            await wait_until(lambda: len(ex.connections) == 1, 3, "old connection closed")
        await wait_until(lambda: primary.conn_id in col.conns, 3, "data on the last one")
        assert primary.server_shutdowns == 3 and shard.reconnects == 0
        await stop(engine, ex)
    assert_lossless(col, ex, engine)


@pytest.mark.timeout(30)
async def test_lifetime_notice_50ms_before_close_still_rolls_over_without_loss() -> None:
    """The local exchange sends serverShutdown only 50 ms before its lifetime close;
    on loopback the replacement is connected and subscribed well within that."""
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=5, record_sent=True)
    async with LocalExchange(cfg) as ex:
        ex.faults.set_lifetime(1.5, existing=True, notice=True)
        engine = Engine(settings_for(ex, *STREAMS))
        col = Collector(engine)
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: primary.server_shutdowns >= 3, 9, "three lifetimes")
        await wait_until(lambda: len(col.conns) >= 4, 3, "data from the 4th connection")
        await stop(engine, ex)
    assert_lossless(col, ex, engine)


@pytest.mark.timeout(30)
async def test_failed_replacement_keeps_the_old_connection_and_retries() -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=6, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, *STREAMS, rollover_after_s=0.5))
        col = Collector(engine)
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: primary.state == "open" and len(col.trades) > 10, 5, "open")
        first = primary.conn_id
        real = ex.ws_url
        link = shard.links[0]
        nowhere = cfg_with(engine, ws_url="ws://127.0.0.1:1")  # nothing listens there
        engine.live.manager.context.cfg = nowhere
        await wait_until(lambda: link.rollover_failures >= 2, 5, "failed replacements")
        assert primary.conn_id == first and primary.state == "open"
        n = len(col.trades)
        await wait_until(lambda: len(col.trades) > n + 20, 5, "the old one still delivers")
        engine.live.manager.context.cfg = cfg_with(engine, ws_url=real)
        await wait_until(lambda: shard.rollovers >= 1, 8, "rollover once it works again")
        assert shard.reconnects == 0
        assert col.what("rollover_failed")
        await wait_until(lambda: primary.conn_id in col.conns, 3, "data on the new one")
        await stop(engine, ex)
    assert_lossless(col, ex, engine)


def cfg_with(engine: Engine, **changes: Any) -> Any:
    import dataclasses
    return dataclasses.replace(engine.live.manager.cfg, **changes)


@pytest.mark.timeout(30)
async def test_redundancy_two_loses_nothing_when_one_connection_drops() -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=7, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, *STREAMS, redundancy=2))
        col = Collector(engine)
        await engine.start()
        shard = engine.live.manager.shards[0]
        assert len(shard.links) == 2
        await wait_until(lambda: len(ex.connections) == 2 and len(col.trades) > 20, 5,
                         "two connections")
        for n in range(4):
            victim = ex.connections[n % 2]
            victim.abort()  # one TCP connection dies, frames in flight are lost
            await wait_until(lambda v=victim: v.closed and len(ex.connections) == 2
                             and all(c.streams for c in ex.connections), 5, "reconnected")
            seen = len(col.trades)
            await wait_until(lambda s=seen: len(col.trades) > s + 20, 5, "data")
        assert sum(link.reconnects for link in shard.links) == 4
        await stop(engine, ex)
    rows = engine.status().connections
    assert [(r.shard, r.link) for r in rows] == [(0, 0), (0, 1)]
    assert all(r.state == "stopped" for r in rows)
    assert engine.live.gate.duplicates > 0
    assert_lossless(col, ex, engine)
