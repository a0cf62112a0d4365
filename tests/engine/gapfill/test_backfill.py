"""Gap backfill from REST (engine.gapfill), end to end against the local exchange over
loopback: disconnects, 429s, klines and a kill -9 restart leave a recording whose trade
and aggTrade ids are contiguous, without duplicates."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from engine.bus import Bus
from engine.clock import ExchangeClock
from engine.engine import Engine
from engine.events import AggTrade, Kline, LedgerEntry, Trade
from engine.exchange import ExchangeConfig, LocalExchange
from engine.feed.gate import IdGate
from engine.gapfill.backfiller import Backfiller
from engine.rest.client import RestClient
from engine.storage.tail import last_recorded
from tests.helpers import ROOT, read_kind, settings_for, wait_until

# -- end to end ------------------------------------------------------------------------------


def assert_contiguous(rows: list[dict[str, Any]], key: str) -> list[int]:
    ids = [r[key] for r in rows]
    dupes = [i for i, n in Counter(ids).items() if n > 1]
    assert not dupes, f"{key}: {len(dupes)} duplicates, e.g. {dupes[:5]}"
    ids.sort()
    holes = [(a, b) for a, b in itertools.pairwise(ids) if b != a + 1]
    assert not holes, f"{key}: holes {holes[:5]}"
    return ids


def recording_settings(ex: LocalExchange, root: Path, *extra: tuple[str, Any],
                       **conn: Any) -> Any:
    return settings_for(ex, ("storage.enabled", True), ("storage.directory", str(root)),
                        ("storage.flush_interval_s", 0.2), *extra, **conn)


def filled(engine: Engine, *streams: str) -> bool:
    return all(any(e.what == "backfill" and e.stream == s for e in engine_ledger(engine))
               for s in streams)


def engine_ledger(engine: Engine) -> list[LedgerEntry]:
    return engine.__dict__.setdefault("_test_ledger", [])


def watch_ledger(engine: Engine) -> None:
    engine.bus.subscribe(engine_ledger(engine).append, kinds=[LedgerEntry], mode="inline",
                         name="test-ledger")


async def test_disconnect_during_trading_is_backfilled_without_holes_or_duplicates(
        tmp_path) -> None:
    root = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=1500, seed=31)) as ex:
        engine = Engine(recording_settings(ex, root))
        watch_ledger(engine)
        trades: list[Trade] = []
        engine.bus.subscribe(trades.append, kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: len(trades) > 100, 10, "trades")
        ex.faults.drop_all()  # trading goes on while we reconnect
        await wait_until(lambda: filled(engine, "btcusdt@trade", "btcusdt@aggTrade"), 8,
                         "both gaps backfilled")
        n = len(trades)
        await wait_until(lambda: len(trades) > n + 20, 5, "live trades after the backfill")
        await engine.stop()
    assert engine.live.backfiller is not None and engine.live.backfiller.stats.failed == 0
    trade_rows = read_kind(root, "trade")
    agg_rows = read_kind(root, "aggTrade")
    assert_contiguous(trade_rows, "trade_id")
    assert_contiguous(agg_rows, "agg_id")
    ledger = read_kind(root, "_ledger")
    for stream, rows, key in (("btcusdt@trade", trade_rows, "trade_id"),
                              ("btcusdt@aggTrade", agg_rows, "agg_id")):
        gaps = [e for e in ledger if e["what"] == "gap" and e["stream"] == stream]
        fills = [e for e in ledger if e["what"] == "backfill" and e["stream"] == stream]
        assert gaps and fills, stream
        missing = {i for g in gaps for i in range(*gap_ids(g))}
        back = {r[key] for r in rows if r["backfilled"]}
        assert back == missing, stream  # exactly the missing ids came from REST
        assert all(r["conn_id"] == 0 for r in rows if r["backfilled"])
        endpoint = "historicalTrades" if key == "trade_id" else "aggTrades"
        counts = [f["detail"].removesuffix(f" rows from /api/v3/{endpoint}") for f in fills]
        assert sum(map(int, counts)) == len(missing)
        assert [f["first_missing"] for f in fills] == [g["first_missing"] for g in gaps]


def gap_ids(g: dict[str, Any]) -> tuple[int, int]:
    """A ledger row's missing ids as a half-open range."""
    return g["first_missing"], g["last_missing"] + 1


async def test_rest_429_during_backfill_is_retried_within_the_weight_budget(tmp_path) -> None:
    root = tmp_path / "data"
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=32, weight_limit=60,
                         weight_window_s=1.0)
    async with LocalExchange(cfg) as ex:
        engine = Engine(recording_settings(ex, root))
        watch_ledger(engine)
        assert engine.live.backfiller is not None
        engine.live.backfiller.page = 10  # several pages per gap: 25 weight each vs 60 per second
        trades: list[Trade] = []
        engine.bus.subscribe(trades.append, kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: engine.live.info.info is not None and len(trades) > 100, 10,
                         "exchangeInfo adopted and trades flowing")
        assert engine.live.rest.budget.limit == 60
        market = ex.market("BTCUSDT")
        before = market.last_trade_id
        ex.faults.stall(True)  # a gap of 40+ trades: several pages of 10 (weight 25 each)
        await wait_until(lambda: market.last_trade_id > before + 40, 5, "trading meanwhile")
        ex.faults.rest_errors(429, 2, retry_after=1)
        ex.faults.drop_all()
        await wait_until(lambda: filled(engine, "btcusdt@trade", "btcusdt@aggTrade"), 9,
                         "both gaps backfilled")
        await engine.stop()
    stats = engine.live.backfiller.stats
    assert ex.faults.injected["rest_429"] == 2 and stats.retries >= 2
    assert stats.failed == 0
    assert ex.limiter.rejected == 0  # the budget waited: the exchange never had to refuse
    assert engine.live.rest.budget_status().rate_limited == 2
    pages = [r for r in ex.faults.rest_log if r[1] == "historicalTrades" and r[2] == 200]
    assert len(pages) >= 3
    assert_contiguous(read_kind(root, "trade"), "trade_id")
    assert_contiguous(read_kind(root, "aggTrade"), "agg_id")


async def test_klines_missed_during_a_disconnect_are_backfilled(tmp_path) -> None:
    root = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=33)) as ex:
        engine = Engine(recording_settings(ex, root, ("streams.kline.interval", "1s"),
                                           stale_after_s=1.0, idle_ping_after_s=0.5))
        watch_ledger(engine)
        assert engine.live.backfiller is not None
        closed: list[Kline] = []
        engine.bus.subscribe(lambda k: k.bar.closed and closed.append(k), kinds=[Kline],
                             mode="inline")
        await engine.start()
        await wait_until(lambda: sum(not k.backfilled for k in closed) >= 2, 8,
                         "closed live klines")
        ex.faults.stall(True)  # silent socket: replaced as stale after 1 s
        await wait_until(lambda: filled(engine, "btcusdt@kline_1s"), 8, "klines backfilled")
        n = len(closed)
        await wait_until(lambda: any(not k.backfilled for k in closed[n:]), 5,
                         "a live closed kline after the backfill")
        await engine.stop()
    rows = [r for r in read_kind(root, "kline") if r["closed"] and r["interval"] == "1s"]
    opens = [r["open_time"] for r in rows]
    assert len(opens) == len(set(opens)), "no closed bar stored twice"
    back = sorted(r["open_time"] for r in rows if r["backfilled"])
    assert back
    before = max(r["open_time"] for r in rows if not r["backfilled"]
                 and r["open_time"] < back[0])
    after = min(r["open_time"] for r in rows if not r["backfilled"]
                and r["open_time"] > back[-1])
    # every bar between the last one seen before the drop and the first one seen after
    assert back == list(range(before + 1000, after, 1000))
    fills = [e for e in engine_ledger(engine) if e.what == "backfill"
             and e.stream == "btcusdt@kline_1s"]
    assert fills[0].first_missing == back[0]
    assert sum(int(f.detail.split()[0]) for f in fills) == len(back)


# -- kill -9 and restart ---------------------------------------------------------------------


class Proc:
    """``binance-live --no-ui`` recording into a directory (killed with SIGKILL)."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="220")
        self.p = subprocess.Popen([sys.executable, "-m", "tui", "--no-ui", *args], cwd=ROOT,
                                  env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)


def recorded_ids(root: Path) -> int:
    try:
        tail = last_recorded(root, ["BTCUSDT"])
    except OSError:
        return 0
    return len(tail.ids)


async def test_kill_9_restart_backfills_the_downtime(tmp_path) -> None:
    root = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=1500, seed=34)) as ex:
        proc = Proc("--ws-url", ex.ws_url, "--rest-url", ex.rest_url, "--storage-dir",
                    str(root), "--set", "storage.flush_interval_s=0.1",
                    "--set", "storage.rotate_mb=0.02",  # finished files before the kill
                    "--set", "streams.kline.enabled=false")
        try:
            await wait_until(lambda: recorded_ids(root) == 2, 9, "finished trade files")
            proc.p.kill()  # kill -9: open segments are left behind, memory is lost
            proc.p.wait(5)
        finally:
            if proc.p.poll() is None:
                proc.p.kill()
        started = time.monotonic()
        engine = Engine(recording_settings(ex, root, ("streams.kline.enabled", False)))
        watch_ledger(engine)
        await engine.start()  # recovers the open segments, then seeds the gate
        await wait_until(lambda: filled(engine, "btcusdt@trade", "btcusdt@aggTrade"), 8,
                         "the downtime backfilled")
        await engine.stop()
        assert time.monotonic() - started < 9
    ledger = engine_ledger(engine)
    gaps = {e.stream: e for e in ledger if e.what == "gap"}
    assert {"btcusdt@trade", "btcusdt@aggTrade"} <= set(gaps)
    trade = assert_contiguous(read_kind(root, "trade"), "trade_id")
    agg = assert_contiguous(read_kind(root, "aggTrade"), "agg_id")
    # the restart gap starts right after what the killed process had on disk
    assert trade[0] < gaps["btcusdt@trade"].first_missing < trade[-1]
    assert agg[0] < gaps["btcusdt@aggTrade"].first_missing < agg[-1]
    assert not list(root.rglob(".*.arrows"))


async def test_restart_on_another_exchanges_recording_is_not_seeded(tmp_path) -> None:
    """Ids recorded from an exchange that is now behind them (the demo after live data):
    no seed, so live trades are not mistaken for duplicates."""
    root = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=35)) as ex:
        first = Engine(recording_settings(ex, root))
        trades: list[Trade] = []
        first.bus.subscribe(trades.append, kinds=[Trade], mode="inline")
        await first.start()
        await wait_until(lambda: len(trades) > 5, 10, "trades")
        await first.stop()
    future = trades[-1].trade_id
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=35)) as ex:
        # a fresh exchange restarts its ids below what was recorded
        assert ex.market("BTCUSDT").last_trade_id < future
        engine = Engine(recording_settings(ex, root))
        got: list[Trade] = []
        engine.bus.subscribe(got.append, kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: len(got) > 5, 10, "live trades still delivered")
        await engine.stop()
    assert got[0].trade_id < future  # not swallowed as "already recorded"


# -- unit: the backfiller against a bus only -------------------------------------------------


async def test_the_same_gap_reported_twice_is_fetched_once() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300, seed=36)) as ex:
        await wait_until(lambda: len(ex.market("BTCUSDT").aggs) > 30, 10, "aggTrades")
        a0 = ex.market("BTCUSDT").aggs[0][0]
        bus = Bus()
        rest = RestClient(ex.rest_url)
        backfiller = Backfiller(rest, bus, IdGate(), kline_keys=list,
                                clock=ExchangeClock(),
                                backoff_initial_s=0.01, backoff_max_s=0.05)
        backfiller.attach()
        got: list[Any] = []
        bus.subscribe(got.append, kinds=[AggTrade, LedgerEntry], mode="inline")
        bus.start()
        gap = LedgerEntry(what="gap", stream="btcusdt@aggTrade", symbol="BTCUSDT",
                          first_missing=a0 + 3, last_good=a0 + 2, last_missing=a0 + 22,
                          detail="20 ids missing")
        bus.publish(gap)
        bus.publish(gap)  # e.g. two gates, or a repeated ledger row
        await wait_until(lambda: any(getattr(e, "what", "") == "backfill" for e in got), 5,
                         "backfill row")
        await backfiller.stop()
        await bus.stop()
        await rest.close()
    aggs = [e.agg_id for e in got if type(e) is AggTrade]
    assert aggs == list(range(a0 + 3, a0 + 23))
    assert sum(getattr(e, "what", "") == "backfill" for e in got) == 1


async def test_ids_dropped_while_storage_failed_are_refetched_for_the_recorder(
        tmp_path, monkeypatch) -> None:
    """Disk full for a while: the feed goes on; at the retry (`r`) the recorder gets the
    trades and aggTrades it dropped from REST, and the window is in the ledger."""
    import errno

    from engine.storage import segments

    root = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=1500, seed=32)) as ex:
        engine = Engine(recording_settings(ex, root))
        watch_ledger(engine)
        trades: list[Trade] = []
        engine.bus.subscribe(trades.append, kinds=[Trade], mode="inline")
        await engine.start()
        await wait_until(lambda: engine.live.recorder.written_max.get(("trade", "BTCUSDT")), 10,
                         "trades on disk")

        def full(self, table):  # noqa: ANN001
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(segments.Segment, "write", full)
        await wait_until(lambda: engine.live.recorder.state == "failed", 10, "REC FAILED")
        n = len(trades)
        await wait_until(lambda: len(trades) > n + 100, 10, "trades while failed")
        monkeypatch.undo()
        await engine.set_recording(True)  # the user's `r`
        await wait_until(lambda: filled(engine, "btcusdt@trade", "btcusdt@aggTrade"), 10,
                         "refetched for the recorder")
        n = len(trades)
        await wait_until(lambda: len(trades) > n + 20, 5, "live trades after the refill")
        await engine.stop()
    trade_rows = read_kind(root, "trade")
    assert_contiguous(trade_rows, "trade_id")
    assert_contiguous(read_kind(root, "aggTrade"), "agg_id")
    assert sum(r["backfilled"] for r in trade_rows) > 100
    assert [r.backfilled for r in trades].count(True) == 0  # the bus had them live
    ledger = read_kind(root, "_ledger")
    assert [e["what"] for e in ledger if e["what"] == "recorder_failed"] == ["recorder_failed"]
    fills = [e for e in ledger if e["what"] == "backfill"]
    assert all("recorder_failed window" in e["detail"] for e in fills) and len(fills) == 2
