"""REST rows → the stream's own events (engine.gapfill.rows), on Binance's doc examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.events import AggTrade, Kline, LedgerEntry, Trade
from engine.feed.decode import FrameDecoder
from engine.gapfill.rows import agg_trades_from_rest, gap_range, klines_from_rest, trades_from_rest


@pytest.fixture
def doc_examples(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "fixtures" / "binance-doc-examples.json"
    if not path.exists():
        pytest.skip("shared/fixtures/binance-doc-examples.json is not available")
    return json.loads(path.read_text())


def test_historical_trades_rows_become_stream_trades(doc_examples) -> None:
    rows = doc_examples["GET /api/v3/historicalTrades"]
    got = trades_from_rest(json.dumps(rows).encode(), "LTCBTC", 123, conn=0)
    assert len(got) == 1 and type(got[0]) is Trade
    t, row = got[0], rows[0]
    assert (t.trade_id, t.price, t.qty, t.trade_time, t.buyer_is_maker, t.best_match) == (
        row["id"], float(row["price"]), float(row["qty"]), row["time"], row["isBuyerMaker"],
        row["isBestMatch"])
    assert t.event_time == row["time"]  # REST has no event time
    assert (t.symbol, t.recv_ns, t.conn, t.backfilled) == ("LTCBTC", 123, 0, True)
    assert t.buyer_order_id is None and t.seller_order_id is None
    # /api/v3/trades has the same shape
    assert trades_from_rest(json.dumps(doc_examples["GET /api/v3/trades"]).encode(),
                            "LTCBTC", 123) == got


def test_agg_trades_rows_equal_the_decoded_stream_payload(doc_examples) -> None:
    row = doc_examples["GET /api/v3/aggTrades"][0]
    [a] = agg_trades_from_rest(json.dumps([row]).encode(), "BNBBTC", 5)
    assert type(a) is AggTrade and a.backfilled and a.conn == 0 and a.recv_ns == 5
    # the same trade as a stream frame decodes to the same struct, but for E and the flag
    frame = dict(row, e="aggTrade", E=row["T"] + 7, s="BNBBTC")
    live = FrameDecoder().decode(json.dumps({"stream": "bnbbtc@aggTrade", "data": frame})
                                 .encode(), 5, 0)
    assert type(live) is AggTrade and not live.backfilled
    assert msgspec.structs.replace(live, event_time=row["T"], backfilled=True) == a


def test_klines_rows_become_stream_klines(doc_examples) -> None:
    rows = doc_examples["GET /api/v3/klines"]
    row = rows[0]
    close_time = row[6]
    [open_bar] = klines_from_rest(json.dumps(rows).encode(), "BNBBTC", "1w", 9, close_time)
    [closed_bar] = klines_from_rest(json.dumps(rows).encode(), "BNBBTC", "1w", 9,
                                    close_time + 1)
    assert not open_bar.bar.closed and closed_bar.bar.closed  # closed once its time passed
    k = closed_bar
    assert type(k) is Kline and k.backfilled and k.symbol == "BNBBTC" and k.recv_ns == 9
    b = k.bar
    assert (b.open_time, b.open, b.high, b.low, b.close, b.volume, b.close_time,
            b.quote_volume, b.trades, b.taker_buy_volume, b.taker_buy_quote_volume) == (
        row[0], *map(float, row[1:6]), row[6], float(row[7]), row[8], float(row[9]),
        float(row[10]))
    assert (b.symbol, b.interval, b.first_trade_id, b.last_trade_id) == ("BNBBTC", "1w", -1, -1)
    assert k.event_time == close_time


def test_gap_range_is_the_entry_s_own_range() -> None:
    assert gap_range(LedgerEntry(what="gap", first_missing=10, last_missing=20)) == (10, 20)
    assert gap_range(LedgerEntry(what="gap", first_missing=10, last_missing=10)) == (10, 10)
    # no range named (-1), or a nonsense one: nothing to fetch
    assert gap_range(LedgerEntry(what="gap", first_missing=10)) == (-1, -1)
    assert gap_range(LedgerEntry(what="gap", first_missing=10, last_missing=9)) == (-1, -1)


def test_stream_decoding_leaves_backfilled_false(doc_examples) -> None:
    dec = FrameDecoder()
    for key, stream in (("<symbol>@trade", "bnbbtc@trade"),
                        ("<symbol>@aggTrade", "bnbbtc@aggTrade"),
                        ("<symbol>@kline_<interval>", "bnbbtc@kline_1m")):
        frame = json.dumps({"stream": stream, "data": doc_examples[key]}).encode()
        assert dec.decode(frame, 1, 1).backfilled is False


