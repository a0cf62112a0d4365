"""The one subscription state: names, and the changes its listeners hear."""

from __future__ import annotations

import pytest

from engine.config import Streams
from engine.subscription import Change, Subscription


def sub() -> tuple[Subscription, list[Change]]:
    s = Subscription(Streams(), ["BTCUSDT"])
    heard: list[Change] = []
    s.listen(heard.append)
    return s, heard


def test_names_follow_the_settings_and_the_current_interval() -> None:
    s, _ = sub()
    assert s.names() == ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m",
                         "btcusdt@bookTicker", "btcusdt@depth20@100ms"]
    assert s.names_for("kline", ["ETHUSDT"], interval="5m") == ["ethusdt@kline_5m"]
    assert s.names_for("trade", []) == []  # no symbols: no names (not every symbol)
    assert s.kline_keys() == [("BTCUSDT", "1m")]


def test_toggling_a_kind_tells_what_to_subscribe() -> None:
    s, heard = sub()
    assert s.set_enabled("trade", False)
    assert not s.set_enabled("trade", False)  # no change, nobody told
    assert s.set_enabled("miniTicker", True)
    assert heard == [Change(removed=("btcusdt@trade",), kind="trade"),
                     Change(added=("btcusdt@miniTicker",), kind="miniTicker")]
    with pytest.raises(ValueError, match="unknown stream kind 'bogus'"):
        s.set_enabled("bogus", True)


def test_a_symbol_added_gets_every_enabled_kind() -> None:
    s, heard = sub()
    assert s.add_symbol("ETHUSDT") and not s.add_symbol("ETHUSDT")
    assert s.symbols == ["BTCUSDT", "ETHUSDT"]
    assert heard == [Change(added=tuple(s.names(["ETHUSDT"])), symbol="ETHUSDT")]
    assert ("ETHUSDT", "1m") in s.kline_keys()


def test_an_interval_switch_moves_every_symbol_s_klines() -> None:
    s, heard = sub()
    s.add_symbol("ETHUSDT")
    heard.clear()
    assert s.set_interval("1s") and not s.set_interval("1s")
    assert heard == [Change(added=("btcusdt@kline_1s", "ethusdt@kline_1s"),
                            removed=("btcusdt@kline_1m", "ethusdt@kline_1m"),
                            old_interval="1m", interval="1s")]
    s.set_enabled("kline", False)
    heard.clear()
    s.set_interval("5m")  # klines off: nothing to (un)subscribe, but the views must know
    assert heard == [Change(old_interval="1s", interval="5m")]
    with pytest.raises(ValueError, match="'7m' is not allowed"):
        s.set_interval("7m")


def test_enable_all_tells_each_kind_that_was_off() -> None:
    s, heard = sub()
    s.enable_all()
    assert all(s.enabled.values())
    assert [c.kind for c in heard] == ["depthUpdate", "miniTicker"]
