"""MarketState (the state the UI pulls) from real frames, and kline interval switching
with REST backfill against the local exchange."""

from __future__ import annotations

import itertools

import msgspec
import pytest

from engine.binance.rest_rows import decode_klines
from engine.config import Streams
from engine.engine import Engine
from engine.events import AggTrade, BookTicker, Kline, Trade
from engine.exchange import ExchangeConfig, LocalExchange
from engine.feed.decode import FrameDecoder
from engine.subscription import Subscription
from engine.view.history import candles_from_rest
from engine.view.market import Candle, CandleSeries, MarketState, median
from tests import factories
from tests.helpers import settings_for, wait_until


def market_for(*symbols: str, **kw: int) -> MarketState:
    """A market view of ``symbols`` on a subscription of its own (default streams)."""
    return MarketState(Subscription(Streams(), symbols), **kw)

HFT = "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"


def _events(shared_dir) -> list:
    dec = FrameDecoder()
    out = []
    for line in (shared_dir / HFT).read_bytes().splitlines():
        ns, _, body = line.partition(b" ")
        ev = dec.decode(body, int(ns), 1)
        if ev is not None:
            out.append(ev)
    return out


def test_real_frames_fill_tape_and_ticker_with_seq_counters(shared_dir) -> None:
    events = _events(shared_dir)
    trades = [e for e in events if isinstance(e, Trade)]
    tickers = [e for e in events if isinstance(e, BookTicker)]
    assert len(trades) == 297 and len(tickers) == 1515
    market = market_for("BTCUSDT")
    for ev in events:
        market.on_event(ev)
    st = market.get("BTCUSDT")
    assert st is not None
    assert st.trades_seq == 297 and st.ticker_seq == 1515
    assert st.candles_seq == 0 and st.depth_seq == 0  # no klines / partial depth in the file
    assert len(st.trades) == 297
    newest = st.trades[-1]
    assert (newest.trade_id, newest.price, newest.qty, newest.buyer_is_maker) == (
        trades[-1].trade_id, trades[-1].price, trades[-1].qty, trades[-1].buyer_is_maker)
    assert newest.time_ms == trades[-1].trade_time
    assert newest.notional == pytest.approx(trades[-1].price * trades[-1].qty)
    assert [t.trade_id for t in market.recent_trades("BTCUSDT", 3)] == [
        t.trade_id for t in trades[:-4:-1]]  # newest first
    assert st.book_ticker is tickers[-1] and st.prev_book_ticker is tickers[-2]
    assert market.book_ticker("BTCUSDT") is tickers[-1]
    assert market.partial_depth("BTCUSDT") is None and market.book_ticker("ETHUSDT") is None
    # the rolling median is refreshed at 20 trades, then every 256: last at trade 276;
    # each tape row keeps the median it met (what a UI's large-trade rule compares with)
    assert st.median_notional == pytest.approx(median([t.price * t.qty for t in trades[:276]]))
    assert [t.median_notional for t in list(st.trades)[:20]] == [0.0] * 20
    assert st.trades[20].median_notional == pytest.approx(
        median([t.price * t.qty for t in trades[:20]]))
    assert st.trades[-1].median_notional == st.median_notional


def test_bounded_tape_and_bid_ask_moves() -> None:
    market = market_for("BTCUSDT", trades_maxlen=10)
    for i in range(25):
        market.on_event(factories.trade(i, price=100.0, event_time=i))
    st = market.get("BTCUSDT")
    assert st is not None and len(st.trades) == 10 and st.trades[0].trade_id == 15
    assert st.trades_seq == 25
    for bid, ask in ((10.0, 11.0), (10.5, 11.0), (10.5, 10.9)):
        market.on_event(factories.book_ticker(bid_price=bid, ask_price=ask))
    assert (st.bid_move, st.ask_move) == (1, -1)
    assert st.prev_book_ticker is not None and st.prev_book_ticker.ask_price == 11.0


def _trade(i: int, notional: float, symbol: str = "BTCUSDT") -> Trade:
    """Trade ``i`` at 100.0 worth ``notional``."""
    return factories.trade(i, symbol=symbol, price=100.0, qty=notional / 100.0, event_time=i,
                           buyer_is_maker=bool(i % 2))


def test_agg_trades_feed_the_tape_only_without_raw_trades() -> None:
    market = market_for("BTCUSDT")

    def agg(i: int) -> AggTrade:
        return factories.agg_trade(1000 + i, first_trade_id=i, event_time=i)

    market.on_event(agg(1))  # no raw trade yet: the tape is not left blank
    market.on_event(_trade(2, 100))
    market.on_event(agg(2))  # raw trades flow: aggTrades ignored
    st = market.symbol("BTCUSDT")
    assert [t.trade_id for t in st.trades] == [1001, 2]
    market.subscription.set_enabled("trade", False)  # trade stream switched off
    market.on_event(_trade(3, 100))  # in flight: ignored
    market.on_event(agg(3))
    assert [t.trade_id for t in st.trades] == [1001, 2, 1003]


def _kline(open_time: int, close: float, closed: bool, interval: str = "1m") -> Kline:
    """A bar opened at 100.0 and now at ``close``."""
    return factories.kline(open_time, interval=interval, open=100.0, close=close, closed=closed,
                           quote_volume=100.0, taker_buy_volume=0.5, taker_buy_quote_volume=50.0)


def test_candles_update_live_bar_append_and_stay_bounded() -> None:
    market = market_for("BTCUSDT", candles_maxlen=3)
    market.on_event(_kline(0, 101, False))
    market.on_event(_kline(0, 102, True))  # same bar, now closed
    market.on_event(_kline(60_000, 99, False))
    st = market.symbol("BTCUSDT")
    assert st.candles_seq == 3
    assert [(c.open_time, c.close, c.closed) for c in market.candles("BTCUSDT")] == [
        (0, 102, True), (60_000, 99, False)]
    for t in (120_000, 180_000, 240_000):
        market.on_event(_kline(t, 100, False))
    assert [c.open_time for c in market.candles("BTCUSDT")] == [120_000, 180_000, 240_000]
    market.on_event(_kline(0, 100, False, interval="5m"))  # other intervals kept apart
    assert len(market.candles("BTCUSDT", "5m")) == 1 and len(market.candles("BTCUSDT")) == 3


def test_history_merges_under_live_bars() -> None:
    series = CandleSeries(maxlen=10)
    series.upsert(Candle(180, 1, 1, 1, 5.0, 1, False))  # live bar from the stream
    history = [Candle(t, 1, 1, 1, 1.0, 1, True) for t in (0, 60, 120)]
    history.append(Candle(180, 1, 1, 1, 4.0, 1, False))  # REST's view of the live bar
    assert series.merge_history(history) == 3
    assert [(c.open_time, c.close) for c in series.last()] == [
        (0, 1.0), (60, 1.0), (120, 1.0), (180, 5.0)]  # sorted; the live bar kept
    series.upsert(Candle(30, 1, 1, 1, 1.0, 1, True))  # out of order: re-sorted
    assert [c.open_time for c in series.last(3)] == [60, 120, 180]
    assert [c.open_time for c in series.last()] == [0, 30, 60, 120, 180]
    series.upsert(Candle(240, 1, 1, 1, 1.0, 1, False))
    assert next(reversed(series.bars)) == 240


def test_rest_history_marks_the_open_bar() -> None:
    body = msgspec.json.encode([
        [0, "1.0", "2.0", "0.5", "1.5", "10", 59_999, "15", 3, "5", "7", "0"],
        [60_000, "1.5", "1.6", "1.4", "1.6", "2", 119_999, "3", 1, "1", "1", "0"]])
    bars = candles_from_rest(decode_klines(body), now_ms=100_000)
    assert bars == [Candle(0, 1.0, 2.0, 0.5, 1.5, 10.0, True),
                    Candle(60_000, 1.5, 1.6, 1.4, 1.6, 2.0, False)]


# -- interval switching against the local exchange ----------------------------------------


def _exchange_with_history(minutes: int = 150,
                           symbols: tuple[str, ...] = ("BTCUSDT",)) -> LocalExchange:
    """A local exchange whose markets already traded for ``minutes``."""
    ex = LocalExchange(ExchangeConfig(symbols=symbols, rate=200, warmup_ops=0))
    now = ex.now_ms()
    for symbol in symbols:
        market = ex.market(symbol)
        for t in range(now - minutes * 60_000, now - 1_000, 2_000):
            market.step(t, 4)
        market.drain()
        market.reset_diffs()
    return ex


async def test_set_kline_interval_resubscribes_live_and_backfills() -> None:
    async with _exchange_with_history() as ex:
        engine = Engine(settings_for(ex, ("streams.kline.interval", "1m")))
        async with engine:
            await wait_until(lambda: len(ex.connections) == 1
                             and "btcusdt@kline_1m" in ex.connections[0].streams, 10,
                             "subscribed to kline_1m")
            await wait_until(lambda: len(engine.market.candles("BTCUSDT")) > 50, 10,
                             "startup backfill of 1m candles")
            with pytest.raises(ValueError, match="not allowed"):
                await engine.set_kline_interval("7m")
            loaded = await engine.set_kline_interval("1s")
            assert engine.kline_interval == "1s" and engine.market.interval == "1s"
            assert loaded > 50 and engine.status().history_error == ""
            bars = engine.market.candles("BTCUSDT")
            assert len(bars) > 50  # full chart right after the switch
            assert engine.market.candles("BTCUSDT", "1m") == []  # old interval dropped
            assert all(a.open_time + 1000 == b.open_time for a, b in itertools.pairwise(bars))
            await wait_until(lambda: "btcusdt@kline_1s" in ex.connections[0].streams
                             and "btcusdt@kline_1m" not in ex.connections[0].streams, 10,
                             "UNSUBSCRIBE kline_1m / SUBSCRIBE kline_1s on the open socket")
            assert ex.stats.connections_accepted == 1
            assert "btcusdt@kline_1s" in engine.live.manager.subscribed()
            last_open = bars[-1].open_time
            await wait_until(lambda: engine.market.candles("BTCUSDT")[-1].open_time > last_open,
                             10, "live 1s klines append new bars")
            assert engine.status().streams  # status still builds with the new names
            engine.set_stream("kline", False)  # toggles follow the current interval
            await wait_until(lambda: "btcusdt@kline_1s" not in ex.connections[0].streams, 10,
                             "kline_1s unsubscribed by the toggle")
            engine.set_stream("kline", True)
            await wait_until(lambda: "btcusdt@kline_1s" in ex.connections[0].streams, 10,
                             "kline_1s resubscribed by the toggle")
            assert ex.stats.connections_accepted == 1


async def test_a_symbol_added_at_runtime_gets_history_after_an_interval_switch() -> None:
    """The candle history loops over the one subscription's symbols: a symbol added with
    ``s`` is in it (it used to loop over the configured symbols only, so the added one
    showed a lone live bar after ``[``/``]``)."""
    async with _exchange_with_history(symbols=("BTCUSDT", "ETHUSDT")) as ex:
        engine = Engine(settings_for(ex, ("streams.kline.interval", "1m")))
        async with engine:
            assert await engine.add_symbol("ethusdt") == ""
            assert engine.symbols == ["BTCUSDT", "ETHUSDT"]
            assert len(engine.market.candles("ETHUSDT")) > 50  # its 1m history, at once
            loaded = await engine.set_kline_interval("1s")
            eth = engine.market.candles("ETHUSDT")
            assert len(eth) > 50 and all(a.open_time + 1000 == b.open_time
                                         for a, b in itertools.pairwise(eth))
            assert loaded > 100  # both symbols' bars
            assert engine.status().history_error == ""
            await wait_until(lambda: "ethusdt@kline_1s" in ex.connections[0].streams, 10,
                             "the added symbol's klines follow the interval")
