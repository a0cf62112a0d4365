"""Market widgets: pure formatting/geometry helpers, and TradeTape/Candles rendered by
Pilot in a tiny app from a MarketState filled directly."""

from __future__ import annotations

from typing import Any

import pytest
from rich.style import Style
from textual.app import App, ComposeResult
from textual.color import Color

from engine.config import Streams
from engine.events import Kline, Trade
from engine.subscription import Subscription
from engine.view.market import MarketState, TapeTrade
from tests import factories
from tui.widgets import THEME_VARIABLES, Candles, TradeTape
from tui.widgets.format import (
    axis_label_rows,
    candle_cell,
    candle_column,
    format_notional,
    format_price,
    format_qty,
    format_time_ms,
    price_decimals,
    price_range,
    price_to_sub,
    row_price,
    volume_column,
)
from tui.widgets.trade_tape import LargeTrades

# -- pure helpers --------------------------------------------------------------------------


def test_price_formatting_by_magnitude() -> None:
    assert [price_decimals(p) for p in (61837.63, 3000, 150, 1.2345, 0.51234, 0.00001234)] \
        == [2, 2, 2, 4, 5, 8]
    assert format_price(61837.63) == "61837.63"
    assert format_price(0.00001234) == "0.00001234"
    assert format_price(99.5, 2) == "99.50"
    assert format_price(float("nan")) == "-"
    assert [format_qty(q) for q in (0.02, 1.5, 123.45, 12345.6, 2_500_000)] == [
        "0.02000", "1.500", "123.5", "12,346", "2.50M"]
    assert [format_notional(n) for n in (12.345, 1236.75, 2_500_000)] == [
        "12.35", "1.24k", "2.50M"]
    assert format_time_ms(1723161255342) == "23:54:15.342"
    assert format_time_ms(0) == "00:00:00.000"


def test_price_scale_maps_range_onto_sub_rows() -> None:
    assert price_to_sub(100, 100, 110, 20) == 0
    assert price_to_sub(110, 100, 110, 20) == 19  # the top bin includes hi
    assert price_to_sub(105, 100, 110, 20) == 10
    assert price_to_sub(90, 100, 110, 20) == 0 and price_to_sub(120, 100, 110, 20) == 19
    assert price_to_sub(5, 5, 5, 20) == 10  # flat
    assert row_price(0, 100, 110, 10) == pytest.approx(109.5)
    assert row_price(9, 100, 110, 10) == pytest.approx(100.5)
    lo, hi = price_range([5.0], [5.0])
    assert lo < 5.0 < hi
    assert axis_label_rows(10) == [0, 4, 8] and axis_label_rows(12) == [0, 4, 8, 11]


def test_candle_glyphs() -> None:
    assert candle_cell(True, True, True, True) == "█"
    assert candle_cell(True, False, True, True) == "▀"
    assert candle_cell(False, True, False, False) == "▄"
    assert candle_cell(False, False, True, True) == "│"
    assert candle_cell(False, False, True, False) == "╵"
    assert candle_cell(False, False, False, True) == "╷"
    assert candle_cell(False, False, False, False) == " "
    # range 100..110 on 5 rows = 10 half rows of 1.0 (row 0 = half rows 9, 8)
    assert candle_column(102, 110, 100, 107, 100, 110, 5) == ["│", "█", "█", "█", "│"]
    assert candle_column(103, 110, 100, 106, 100, 110, 5) == ["│", "▄", "█", "▀", "│"]
    assert candle_column(106, 108, 103, 103, 100, 110, 5) == ["╷", "▄", "█", "▀", " "]
    # a doji is half a cell
    assert candle_column(105, 105, 105, 105, 100, 110, 5)[2] == "▀"
    assert volume_column(10, 10, 2) == ["█", "█"]
    assert volume_column(5, 10, 2) == [" ", "█"]
    assert volume_column(1, 10, 2) == [" ", "▂"]
    assert volume_column(0.0001, 10, 2) == [" ", "▁"]
    assert volume_column(0, 10, 2) == [" ", " "]


# -- widgets in a tiny app -------------------------------------------------------------------


class Host(App[None]):
    """Hosts one widget at a fixed size, with the widgets' theme variables declared."""

    def __init__(self, widget: Any, width: int = 60, height: int = 20) -> None:
        super().__init__()
        self.widget = widget
        widget.styles.width = width
        widget.styles.height = height

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **THEME_VARIABLES}

    def compose(self) -> ComposeResult:
        yield self.widget


def _trade(i: int, price: float, qty: float, maker: bool, symbol: str = "BTCUSDT") -> Trade:
    """Trade ``i``, ``i`` ms after 23:54:15.000 UTC."""
    return factories.trade(i, symbol=symbol, price=price, qty=qty, buyer_is_maker=maker,
                           event_time=1723161255000 + i)


def _color(name: str) -> Any:
    return Color.parse(THEME_VARIABLES[name]).rich_color


def _style(strip: Any, text: str) -> Style:
    for seg in strip:
        if text in seg.text:
            return seg.style
    raise AssertionError(f"{text!r} not in {strip.text!r}")


def market_for(*symbols: str, interval: str = "1m") -> MarketState:
    sub = Subscription(Streams(), symbols)
    sub.interval = interval
    return MarketState(sub)


def _tape_row(notional: float, median_notional: float) -> TapeTrade:
    return TapeTrade(0, 100.0, notional / 100.0, notional, False, median_notional, 1)


def test_large_trade_rule_absolute_and_median_multiple() -> None:
    rule = LargeTrades(notional=5_000, multiple=10)
    assert not rule(_tape_row(999.0, 100.0))  # < 10 x the median it met
    assert rule(_tape_row(1_000.0, 100.0))  # = 10 x median
    assert rule(_tape_row(6_000.0, 0.0))  # over the absolute threshold, no median yet
    assert not rule(_tape_row(4_000.0, 0.0))  # the multiple rule waits for a median
    off = LargeTrades(notional=0, multiple=0)
    assert not off(_tape_row(1e12, 1.0))


def test_the_median_a_row_met_is_the_one_when_it_arrived() -> None:
    """The rule sees each trade as when it arrived, like the engine did before the rule
    moved to the UI: a spike that moves the median later does not un-highlight it."""
    market = market_for("BTCUSDT")
    for i in range(30):
        market.on_event(_trade(i, 100.0, 1.0, False))  # notional 100: median 100 at 20
    market.on_event(_trade(100, 100.0, 10.0, False))  # 1,000 = 10 x median
    rows = list(market.symbol("BTCUSDT").trades)
    rule = LargeTrades(notional=0, multiple=10)
    assert [rule(r) for r in rows[-2:]] == [False, True]
    assert not any(rule(r) for r in rows[:20])  # no median yet


def test_large_trade_settings_are_validated() -> None:
    from engine.config import ConfigError
    from tui.settings import load_app_settings

    ui = load_app_settings(None, [("ui.large_trade_notional", 250_000),
                                  ("ui.large_trade_multiple", 20)]).ui
    assert (ui.large_trade_notional, ui.large_trade_multiple) == (250_000.0, 20.0)
    assert load_app_settings().ui.large_trade_multiple == 10.0
    assert load_app_settings().ui.large_trade_notional == 0.0
    with pytest.raises(ConfigError, match=r"ui\.large_trade_notional: -1 is too small"):
        load_app_settings(None, [("ui.large_trade_notional", -1)])
    with pytest.raises(ConfigError, match=r"ui\.large_trade_multiple"):
        load_app_settings(None, [("ui.large_trade_multiple", "lots")])


async def test_trade_tape_newest_first_colours_and_large_highlight() -> None:
    market = market_for("BTCUSDT")
    market.on_event(_trade(1, 61837.63, 0.02, True))  # sell aggressor
    market.on_event(_trade(2, 61837.64, 0.5, False))  # buy aggressor, 30.9k: large
    market.on_event(_trade(3, 61837.65, 0.001, False))
    tape = TradeTape(market, "BTCUSDT", id="w", large=LargeTrades(notional=10_000, multiple=0))
    app = Host(tape)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = [tape.render_line(y).text for y in range(5)]
        assert lines[0].split() == ["time", "(UTC)", "price", "qty", "notional"]
        assert lines[1].split() == ["23:54:15.003", "61837.65", "0.00100", "61.84"]
        assert lines[2].split() == ["23:54:15.002", "61837.64", "0.50000", "30.92k"]
        assert lines[3].split() == ["23:54:15.001", "61837.63", "0.02000", "1.24k"]
        assert lines[4].strip() == ""
        newest, large, sell = (_style(tape.render_line(y), "61837.6") for y in (1, 2, 3))
        assert newest.color == _color("bid") and not newest.bold and not newest.reverse
        assert sell.color == _color("ask") and not sell.reverse
        assert large.color == _color("bid") and large.bold and large.reverse
        # repaints only when trades_seq moved
        taken = tape.snapshots
        assert tape.refresh_from_state() is False and tape.snapshots == taken
        market.on_event(_trade(4, 61838.00, 0.1, True))
        assert tape.refresh_from_state() is True
        assert "61838.00" in tape.render_line(1).text
        # frozen: the last frame stays
        tape.frozen = True
        assert tape.has_class("-frozen")
        before = [tape.render_line(y).text for y in range(6)]
        for i in range(5, 10):
            market.on_event(_trade(i, 61900.0, 0.1, False))
        assert tape.refresh_from_state() is False
        await pilot.pause()
        assert [tape.render_line(y).text for y in range(6)] == before
        tape.frozen = False
        assert tape.refresh_from_state() is True
        assert "61900.00" in tape.render_line(1).text
        # switching symbol shows the other symbol's tape
        market.on_event(_trade(50, 3000.5, 2.0, True, symbol="ETHUSDT"))
        tape.symbol = "ethusdt"
        assert tape.symbol == "ETHUSDT"
        assert tape.render_line(1).text.split()[1] == "3000.50"
        assert tape.render_line(2).text.strip() == ""


def _bar(i: int, o: float, h: float, lo: float, c: float, v: float, closed: bool = True,
         interval: str = "1m") -> Kline:
    """The bar opening ``i`` minutes after the epoch."""
    return factories.kline(i * 60_000, interval=interval, open=o, high=h, low=lo, close=c,
                           volume=v, closed=closed)


def _column(widget: Candles, x: int, rows: range) -> list[str]:
    return [widget.render_line(y).text[x] for y in rows]


async def test_candles_bodies_wicks_axis_volume_and_live_bar() -> None:
    market = market_for("BTCUSDT", interval="1m")
    market.on_event(_bar(0, 103, 126, 100, 114, 10))  # up, spans the whole range
    market.on_event(_bar(1, 120, 122, 105, 110, 5))  # down
    market.on_event(_bar(2, 110, 112, 108, 111, 2.5, closed=False))  # live
    candles = Candles(market, "BTCUSDT", id="w")
    app = Host(candles, height=17)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert candles.size == (60, 17)
        # header, 13 chart rows = 26 half rows of 1.0 over 100..126, 3 volume rows
        header = candles.render_line(0).text
        assert header.startswith("BTCUSDT 1m ● O 110.00 H 112.00 L 108.00 C 111.00 V 2.500")
        assert _style(candles.render_line(0), "●").color == _color("live-candle")
        shown, chart_w = candles.visible_bars(60)
        assert len(shown) == 3 and chart_w == 60 - 7  # axis " 126.00"
        x0 = chart_w - 6  # three bars, two columns each, newest at the right
        chart = range(1, 14)
        assert _column(candles, x0, chart) == ["│"] * 5 + ["▄"] + ["█"] * 5 + ["▀", "│"]
        assert _column(candles, x0 + 2, chart) == [
            " ", "╷", "▄", "█", "█", "█", "█", "█", "│", "│", "╵", " ", " "]
        assert _column(candles, x0 + 4, chart) == [" "] * 6 + ["╷", "█", "│"] + [" "] * 4
        assert all(candles.render_line(y).text[x0 + 1] == " " for y in chart)  # gaps
        # colours: up $bid, down $ask, the open bar $live-candle
        row = candles.render_line(1 + 7)
        assert row.text[x0:x0 + 5] == "█ █ █"
        colours = [seg.style.color for seg in row for ch in seg.text]
        assert colours[x0] == _color("bid") and colours[x0 + 2] == _color("ask")
        assert colours[x0 + 4] == _color("live-candle")
        # price axis: labels at rows 0, 4, 8, 12 (row centres), the last close on row 7
        axis = {y - 1: candles.render_line(y).text[chart_w:].strip() for y in chart}
        assert axis == {0: "125.00", 1: "", 2: "", 3: "", 4: "117.00", 5: "", 6: "",
                        7: "111.00", 8: "109.00", 9: "", 10: "", 11: "", 12: "101.00"}
        assert _style(candles.render_line(8), "111.00").bold
        # volume strip in eighths, scaled to the largest visible volume
        assert _column(candles, x0, range(14, 17)) == ["█", "█", "█"]
        assert _column(candles, x0 + 2, range(14, 17)) == [" ", "▄", "█"]
        assert _column(candles, x0 + 4, range(14, 17)) == [" ", " ", "▆"]
        assert candles.render_line(14).text[chart_w:] == " 10.000"  # volume scale
        # nothing changed: no new snapshot; a live update moves candles_seq and repaints
        taken = candles.snapshots
        assert candles.refresh_from_state() is False and candles.snapshots == taken
        market.on_event(_bar(2, 110, 112, 108, 110.5, 3.0, closed=False))
        assert candles.refresh_from_state() is True
        assert "C 110.50" in candles.render_line(0).text
        # frozen: the frame stays while bars keep arriving
        candles.frozen = True
        before = [candles.render_line(y).text for y in range(17)]
        market.on_event(_bar(3, 110, 130, 90, 129, 50))
        assert candles.refresh_from_state() is False
        await pilot.pause()
        assert [candles.render_line(y).text for y in range(17)] == before
        candles.frozen = False
        assert candles.refresh_from_state() is True
        assert candles.render_line(0).text.startswith("BTCUSDT 1m O 110.00 H 130.00")


async def test_candles_fill_width_and_follow_resize() -> None:
    market = market_for("BTCUSDT")
    for i in range(100):
        market.on_event(_bar(i, 100 + i % 7, 108, 99, 101 + i % 5, 1 + i % 3))
    candles = Candles(market, "BTCUSDT", id="w")
    app = Host(candles)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        shown, chart_w = candles.visible_bars(60)
        assert len(shown) == chart_w // 2 and shown[-1].open_time == 99 * 60_000
        candles.styles.width = 30
        await pilot.pause()
        assert candles.size.width == 30
        assert len(candles.render_line(5).text) == 30
        assert len(candles.visible_bars(30)[0]) == (30 - 7) // 2
        candles.symbol = "ETHUSDT"  # no klines yet
        assert "ETHUSDT 1m  waiting for klines" in candles.render_line(0).text


async def test_widgets_wait_for_their_market_state() -> None:
    """The app composes before the engine exists: widgets start empty and fill when
    their market is assigned."""
    tape = TradeTape(None, "BTCUSDT", id="w")
    app = Host(tape)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert tape.refresh_from_state() is False
        assert "price" in tape.render_line(0).text and tape.render_line(1).text.strip() == ""
        market = market_for("BTCUSDT")
        market.on_event(_trade(1, 100.0, 1.0, False))
        tape.state = market
        assert tape.market is market
        assert tape.render_line(1).text.split()[1] == "100.00"
