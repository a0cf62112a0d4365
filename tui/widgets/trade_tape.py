"""TradeTape: the time & sales tape, newest first, coloured by aggressor side.

Binance's ``m`` ("buyer is the maker") true means the seller crossed the spread: a sell
aggressor, drawn in ``$ask``; false is a buy aggressor in ``$bid``. Large trades
(:class:`LargeTrades`: ``ui.large_trade_notional``, or ``ui.large_trade_multiple`` × the
rolling median notional when the trade arrived) are bold and reversed. Line API: one
strip per visible row, rebuilt only when ``trades_seq`` moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual.strip import Strip

from engine.view.market import MarketState, TapeTrade
from tui.widgets.base import MarketWidget, text_strip
from tui.widgets.format import (
    format_notional,
    format_price,
    format_qty,
    format_time_ms,
    price_decimals,
)

SNAPSHOT_MIN_ROWS = 100  # rows copied per snapshot (more if the widget is taller)


@dataclass(frozen=True)
class LargeTrades:
    """The large-trade rule: at ``notional`` or more (0 = off), or at ``multiple`` × the
    rolling median notional the trade met when it arrived (0 = off)."""

    notional: float = 0.0
    multiple: float = 10.0

    def __call__(self, trade: TapeTrade) -> bool:
        if self.notional > 0 and trade.notional >= self.notional:
            return True
        return (self.multiple > 0 and trade.median_notional > 0
                and trade.notional >= self.multiple * trade.median_notional)


QTY_W = 9
NOTIONAL_W = 9


class TradeTape(MarketWidget):
    """Newest-first trades of one symbol: time (UTC, ms), price, qty, notional."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tradetape--header", "tradetape--buy", "tradetape--sell", "tradetape--large"}
    DEFAULT_CSS = """
    TradeTape { height: 1fr; min-width: 40; }
    TradeTape > .tradetape--header { color: $muted; text-style: bold; }
    TradeTape > .tradetape--buy { color: $bid; }
    TradeTape > .tradetape--sell { color: $ask; }
    TradeTape > .tradetape--large { text-style: bold reverse; }
    """

    def __init__(self, market: MarketState | None, symbol: str, *, show_header: bool = True,
                 large: LargeTrades | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(market, symbol, name=name, id=id, classes=classes)
        self.show_header = show_header
        self.is_large = large or LargeTrades()
        self.rows: list[TapeTrade] = []  # the snapshot, newest first

    def _data_key(self) -> Any:
        market = self.market
        st = market.get(self._symbol) if market is not None else None
        return (id(market), self._symbol, st.trades_seq if st is not None else 0)

    def _snapshot(self) -> None:
        market = self.market
        self.rows = market.recent_trades(self._symbol, max(SNAPSHOT_MIN_ROWS, self.size.height)
                                         ) if market is not None else []

    def _build(self, width: int, height: int) -> list[Strip]:
        rows = self.rows
        decimals = price_decimals(rows[0].price) if rows else 2
        price_w = max(9, max((len(format_price(r.price, decimals)) for r in rows[:height]),
                             default=0))
        out: list[Strip] = []
        if self.show_header:
            header = (f"{'time (UTC)':<12} {'price':>{price_w}} {'qty':>{QTY_W}} "
                      f"{'notional':>{NOTIONAL_W}}")
            out.append(text_strip([(header, self.component_style("tradetape--header"))]))
        buy = self.component_style("tradetape--buy")
        sell = self.component_style("tradetape--sell")
        buy_large = self.component_style("tradetape--buy", "tradetape--large")
        sell_large = self.component_style("tradetape--sell", "tradetape--large")
        for r in rows[:max(0, height - len(out))]:
            line = (f"{format_time_ms(r.time_ms)} {format_price(r.price, decimals):>{price_w}} "
                    f"{format_qty(r.qty):>{QTY_W}} {format_notional(r.notional):>{NOTIONAL_W}}")
            large = self.is_large(r)
            if r.buyer_is_maker:  # seller was the taker
                style = sell_large if large else sell
            else:
                style = buy_large if large else buy
            out.append(text_strip([(line, style)]))
        blank = Strip.blank(width, self.rich_style)
        out.extend([blank] * (height - len(out)))
        return out

    def _size_changed(self) -> None:
        if not self.frozen and self.size.height > len(self.rows):
            self._snapshot()  # taller: more rows, same data
