"""Stream naming: names built from settings and parsed back."""

from __future__ import annotations

import pytest

from engine.binance.streams import parse_stream_name, stream_name


@pytest.mark.parametrize(("kind", "kwargs", "name"), [
    ("trade", {}, "btcusdt@trade"),
    ("aggTrade", {}, "btcusdt@aggTrade"),
    ("kline", {"interval": "1M"}, "btcusdt@kline_1M"),
    ("bookTicker", {}, "btcusdt@bookTicker"),
    ("depthPartial", {"levels": 5, "speed_ms": 1000}, "btcusdt@depth5"),
    ("depthPartial", {"levels": 10, "speed_ms": 100}, "btcusdt@depth10@100ms"),
    ("depthUpdate", {"speed_ms": 100}, "btcusdt@depth@100ms"),
    ("depthUpdate", {"speed_ms": 1000}, "btcusdt@depth"),
    ("miniTicker", {}, "btcusdt@miniTicker"),
])
def test_stream_names_round_trip(kind: str, kwargs: dict, name: str) -> None:
    assert stream_name(kind, "BTCUSDT", **kwargs) == name
    ref = parse_stream_name(name)
    assert ref is not None and ref.kind == kind and ref.symbol == "BTCUSDT"


@pytest.mark.parametrize("name", [
    "btcusdt", "btcusdt@kline_2m", "btcusdt@depth7", "btcusdt@foo", "btcusdt@depth@50ms"])
def test_bad_stream_names(name: str) -> None:
    assert parse_stream_name(name) is None


def test_all_market_names() -> None:
    ref = parse_stream_name("!miniTicker@arr")
    assert ref is not None and ref.kind == "miniTicker" and ref.is_array
    ref = parse_stream_name("!bookTicker")
    assert ref is not None and ref.kind == "bookTicker" and not ref.is_array
    ref = parse_stream_name("!ticker_1h@arr")
    assert ref is not None and ref.kind == "ticker" and ref.param == "1h"
    ref = parse_stream_name("btcusdt@kline_1d@+08:00")
    assert ref is not None and ref.kind == "kline" and ref.param == "1d"
