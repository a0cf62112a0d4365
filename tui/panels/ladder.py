"""Depth ladder: asks above bids with size, cumulative size and bars (Line API).

Rows are computed once per book change (``update_book``) and ``render_line`` only slices
them, so a repaint costs one Strip per visible row. Bars are scaled to the largest
cumulative size on screen and drawn with eighth blocks for sub-cell resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from engine.book import measures
from tui.widgets.format import (
    format_bps,
    format_imbalance,
    format_price,
    format_qty,
    price_decimals,
)

Level = tuple[float, float]
EIGHTHS = " ▏▎▍▌▋▊▉█"
PRICE_W, SIZE_W, CUM_W = 12, 11, 11


def bar(fraction: float, width: int) -> str:
    """A left-aligned bar of ``fraction`` × ``width`` cells, in eighth-cell steps."""
    eighths = max(0, min(width * 8, round(fraction * width * 8)))
    full, part = divmod(eighths, 8)
    return ("█" * full + (EIGHTHS[part] if part else "")).ljust(width)


class DepthLadder(Widget):
    """Best levels meet in the middle: asks (worst → best) above, bids (best → worst) below."""

    COMPONENT_CLASSES = {"ladder--bid", "ladder--ask", "ladder--bid-bar", "ladder--ask-bar",
                         "ladder--header", "ladder--mid", "ladder--best"}
    DEFAULT_CSS = """
    DepthLadder { height: 1fr; }
    DepthLadder > .ladder--bid { color: $bid; }
    DepthLadder > .ladder--ask { color: $ask; }
    DepthLadder > .ladder--bid-bar { color: $bid-bar; }
    DepthLadder > .ladder--ask-bar { color: $ask-bar; }
    DepthLadder > .ladder--header { color: $muted; text-style: bold; }
    DepthLadder > .ladder--mid { color: $foreground; background: $panel; }
    DepthLadder > .ladder--best { text-style: bold reverse; }
    """

    def __init__(self, levels: int = 20, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.levels = levels
        self.bids: list[Level] = []
        self.asks: list[Level] = []
        self.source = ""
        self.update_id = 0
        self.frozen = False
        self._bid_cum: list[float] = []
        self._ask_cum: list[float] = []

    def update_book(self, bids: Sequence[Level], asks: Sequence[Level], source: str,
                    update_id: int) -> None:
        """New top-of-book levels (best first on both sides); ignored while frozen."""
        if self.frozen or (update_id == self.update_id and source == self.source):
            return
        self.bids = list(bids[: self.levels])
        self.asks = list(asks[: self.levels])
        self._bid_cum = _cumulative(self.bids)
        self._ask_cum = _cumulative(self.asks)
        self.source = source
        self.update_id = update_id
        self.refresh()

    # -- rendering --------------------------------------------------------------------

    def _rows_per_side(self) -> int:
        return max(0, min(self.levels, (self.size.height - 2) // 2))

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        n = self._rows_per_side()
        style = self.get_component_rich_style
        if y == 0:
            text = (f"{'price':>{PRICE_W}} {'size':>{SIZE_W}} {'cum':>{CUM_W}}  "
                    f"{self.source} #{self.update_id}")
            return Strip([Segment(text, style("ladder--header"))]).adjust_cell_length(width)
        if y == n + 1:
            return self._mid_line(width, style("ladder--mid"))
        asks, bids = self.asks, self.bids
        ask_cum, bid_cum = self._ask_cum, self._bid_cum
        top = max(ask_cum[min(n, len(ask_cum)) - 1] if ask_cum and n else 0.0,
                  bid_cum[min(n, len(bid_cum)) - 1] if bid_cum and n else 0.0) or 1.0
        if 1 <= y <= n:
            i = n - y  # row just above the mid line is the best ask (index 0)
            if i >= min(n, len(asks)):
                return Strip.blank(width)
            return self._level_line(asks[i], ask_cum[i], top, i == 0, width,
                                    style("ladder--ask"), style("ladder--ask-bar"),
                                    style("ladder--best"))
        i = y - n - 2
        if 0 <= i < min(n, len(bids)):
            return self._level_line(bids[i], bid_cum[i], top, i == 0, width,
                                    style("ladder--bid"), style("ladder--bid-bar"),
                                    style("ladder--best"))
        return Strip.blank(width)

    def _level_line(self, level: Level, cum: float, top: float, best: bool, width: int,
                    colour: Style, bar_colour: Style, best_style: Style) -> Strip:
        price, qty = level
        price_text = f"{format_price(price):>{PRICE_W}}"
        cells = f" {format_qty(qty):>{SIZE_W}} {format_qty(cum):>{CUM_W}}  "
        bar_w = max(0, width - len(price_text) - len(cells))
        segments = [Segment(price_text, colour + best_style if best else colour),
                    Segment(cells, colour),
                    Segment(bar(cum / top, bar_w), bar_colour)]
        return Strip(segments).adjust_cell_length(width)

    def _mid_line(self, width: int, style: Style) -> Strip:
        if not self.bids or not self.asks:
            text = f" waiting for depth ({self.source or 'no source'})"
        else:
            bid, ask = self.bids[0][0], self.asks[0][0]
            mid = measures.mid(bid, ask)
            spread = measures.spread(bid, ask)
            bps = measures.spread_bps(bid, ask)
            imb = measures.levels_imbalance(self.bids, self.asks)
            text = (f" spread {format_price(spread, price_decimals(mid))} ({format_bps(bps)})"
                    f" · mid {format_price(mid)} · imbalance {format_imbalance(imb)}")
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)


def _cumulative(levels: Sequence[Level]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for _, qty in levels:
        total += qty
        out.append(total)
    return out
