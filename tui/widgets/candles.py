"""Candles: OHLC bars with half-block bodies and box-line wicks, a price axis on the
right, a volume strip at the bottom, the still-open bar in ``$live-candle``.

Each screen row is two half-cells tall (``▀``/``▄``), so bodies and wicks end on half a
row. As many bars as fit the width are drawn (one column each plus a gap), newest at the
right; the price range is that of the visible bars. Strips are rebuilt only when
``candles_seq`` moved, the symbol or interval changed, or the widget was resized.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from textual.strip import Strip

from engine.view.market import Candle, MarketState
from tui.widgets.base import MarketWidget, text_strip
from tui.widgets.format import (
    axis_label_rows,
    candle_column,
    format_price,
    format_qty,
    price_decimals,
    price_range,
    price_to_sub,
    row_price,
    volume_column,
)

STEP = 2  # columns per bar: the bar and a gap


def layout_rows(height: int, header: bool) -> tuple[int, int, int]:
    """(header rows, chart rows, volume rows) for a widget ``height`` rows high: the
    volume strip takes a fifth (at least one row) once the chart has room for it."""
    top = 1 if header and height > 0 else 0
    body = height - top
    volume = max(1, body // 5) if body >= 8 else 0
    return top, body - volume, volume


class Candles(MarketWidget):
    """OHLC candles of one symbol at ``interval`` (None: the market's current one)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "candles--header", "candles--up", "candles--down", "candles--live", "candles--axis",
        "candles--last", "candles--volume-up", "candles--volume-down"}
    DEFAULT_CSS = """
    Candles { height: 1fr; }
    Candles > .candles--header { color: $muted; }
    Candles > .candles--up { color: $bid; }
    Candles > .candles--down { color: $ask; }
    Candles > .candles--live { color: $live-candle; }
    Candles > .candles--axis { color: $muted; }
    Candles > .candles--last { color: $live-candle; text-style: bold; }
    Candles > .candles--volume-up { color: $bid-bar; }
    Candles > .candles--volume-down { color: $ask-bar; }
    """

    def __init__(self, market: MarketState | None, symbol: str, *, interval: str | None = None,
                 show_header: bool = True, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(market, symbol, name=name, id=id, classes=classes)
        self._interval = interval
        self.show_header = show_header
        self.bars: list[Candle] = []  # the snapshot, oldest first
        self.bars_interval = ""  # the interval of the snapshot

    @property
    def interval(self) -> str:
        market = self.market
        return self._interval or (market.interval if market is not None else "")

    @interval.setter
    def interval(self, value: str | None) -> None:
        """Pin an interval (None: follow the market's current interval)."""
        self._interval = value
        self._take()

    def _data_key(self) -> Any:
        market = self.market
        st = market.get(self._symbol) if market is not None else None
        return (id(market), self._symbol, self.interval,
                st.candles_seq if st is not None else 0)

    def _snapshot(self) -> None:
        market = self.market
        self.bars_interval = self.interval
        self.bars = market.candles(self._symbol, self.bars_interval) if market is not None \
            else []

    # -- drawing ------------------------------------------------------------------------

    def visible_bars(self, width: int) -> tuple[list[Candle], int]:
        """The bars that fit next to the axis, and the chart width they share."""
        bars = self.bars
        if not bars or width <= 0:
            return [], max(0, width)
        lo, hi = price_range([b.low for b in bars], [b.high for b in bars])
        axis_w = self._axis_width(lo, hi)
        chart_w = max(0, width - axis_w)
        n = chart_w // STEP
        return (bars[-n:] if n else []), chart_w

    def _axis_width(self, lo: float, hi: float) -> int:
        dec = price_decimals(hi)
        return 1 + max(len(format_price(lo, dec)), len(format_price(hi, dec)))

    def _build(self, width: int, height: int) -> list[Strip]:
        top, rows, vrows = layout_rows(height, self.show_header)
        out: list[Strip] = []
        shown, chart_w = self.visible_bars(width)
        if top:
            out.append(self._header(shown))
        blank = Strip.blank(width, self.rich_style)
        if not shown or rows < 2:
            out.extend([blank] * (height - len(out)))
            return out
        lo, hi = price_range([b.low for b in shown], [b.high for b in shown])
        dec = price_decimals(hi)
        up, down, live = (self.component_style("candles--up"),
                          self.component_style("candles--down"),
                          self.component_style("candles--live"))
        vup, vdown = (self.component_style("candles--volume-up"),
                      self.component_style("candles--volume-down"))
        base = self.rich_style
        pad = chart_w - len(shown) * STEP
        columns = [candle_column(b.open, b.high, b.low, b.close, lo, hi, rows) for b in shown]
        styles = [live if not b.closed else up if b.close >= b.open else down for b in shown]
        # price axis: a few labels, and the last close on its own row
        labels = {r: format_price(row_price(r, lo, hi, rows), dec)
                  for r in axis_label_rows(rows)}
        last = shown[-1].close
        last_row = rows - 1 - price_to_sub(last, lo, hi, rows * 2) // 2
        axis, last_style = self.component_style("candles--axis"), \
            self.component_style("candles--last")
        for r in range(rows):
            parts: list[tuple[str, Style]] = [(" " * pad, base)]
            parts += [(col[r] + " ", style) for col, style in zip(columns, styles, strict=True)]
            if r == last_row:
                parts.append((" " + format_price(last, dec), last_style))
            elif r in labels:
                parts.append((" " + labels[r], axis))
            out.append(text_strip(_merge(parts)))
        if vrows:
            vmax = max(b.volume for b in shown)
            vcols = [volume_column(b.volume, vmax, vrows) for b in shown]
            vstyles = [vup if b.close >= b.open else vdown for b in shown]
            for r in range(vrows):
                parts = [(" " * pad, base)]
                parts += [(col[r] + " ", s) for col, s in zip(vcols, vstyles, strict=True)]
                if r == 0:
                    parts.append((" " + format_qty(vmax), axis))  # the scale: max volume
                out.append(text_strip(_merge(parts)))
        out.extend([blank] * (height - len(out)))
        return out

    def _header(self, shown: list[Candle]) -> Strip:
        head = f"{self._symbol} {self.bars_interval or self.interval}"
        if not shown:
            return text_strip([(head + "  waiting for klines…",
                                self.component_style("candles--header"))])
        b = shown[-1]
        dec = price_decimals(b.high)
        text = (f" O {format_price(b.open, dec)} H {format_price(b.high, dec)} "
                f"L {format_price(b.low, dec)} C {format_price(b.close, dec)} "
                f"V {format_qty(b.volume)}")
        style = self.component_style("candles--header")
        live = [(" ●", self.component_style("candles--live"))] if not b.closed else []
        return text_strip([(head, style), *live, (text, style)])  # ● = the bar is open


def _merge(parts: list[tuple[str, Style]]) -> list[tuple[str, Style]]:
    """Join neighbouring runs of the same style (fewer segments per strip)."""
    out: list[tuple[str, Style]] = []
    for text, style in parts:
        if not text:
            continue
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + text, style)
        else:
            out.append((text, style))
    return out
