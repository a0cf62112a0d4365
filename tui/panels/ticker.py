"""Book ticker: best bid/ask with sizes, spread (abs and bps) and mid; changes flash briefly."""

from __future__ import annotations

import time

from rich.text import Text
from textual.widget import Widget

from engine.book import measures
from tui.widgets.format import format_bps, format_price, format_qty, price_decimals

FLASH_S = 0.35


class BookTickerPanel(Widget):
    COMPONENT_CLASSES = {"ticker--bid", "ticker--ask", "ticker--flash", "ticker--muted"}
    DEFAULT_CSS = """
    BookTickerPanel { height: 6; padding: 0 1; }
    BookTickerPanel > .ticker--bid { color: $bid; text-style: bold; }
    BookTickerPanel > .ticker--ask { color: $ask; text-style: bold; }
    BookTickerPanel > .ticker--flash { background: $flash 40%; }
    BookTickerPanel > .ticker--muted { color: $muted; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.symbol = ""
        self.bid = self.bid_qty = self.ask = self.ask_qty = 0.0
        self.update_id = 0
        self.bid_changed_at = self.ask_changed_at = 0.0
        self.frozen = False

    def show(self, symbol: str, bid: float, bid_qty: float, ask: float, ask_qty: float,
             update_id: int, now: float | None = None) -> None:
        """New top of book; the side whose price or size moved flashes for a moment."""
        if self.frozen:
            return
        now = time.monotonic() if now is None else now
        if symbol != self.symbol:
            self.bid_changed_at = self.ask_changed_at = 0.0
        else:
            if (bid, bid_qty) != (self.bid, self.bid_qty):
                self.bid_changed_at = now
            if (ask, ask_qty) != (self.ask, self.ask_qty):
                self.ask_changed_at = now
        self.symbol, self.bid, self.bid_qty, self.ask, self.ask_qty = (
            symbol, bid, bid_qty, ask, ask_qty)
        self.update_id = update_id
        self.refresh()

    def flashing(self, now: float | None = None) -> tuple[bool, bool]:
        now = time.monotonic() if now is None else now
        return now - self.bid_changed_at < FLASH_S, now - self.ask_changed_at < FLASH_S

    def render(self) -> Text:
        style = self.get_component_rich_style
        if not self.bid and not self.ask:
            return Text(f"{self.symbol} waiting for bookTicker…", style=style("ticker--muted"))
        flash_bid, flash_ask = self.flashing()
        flash = style("ticker--flash")
        bid_style = style("ticker--bid") + flash if flash_bid else style("ticker--bid")
        ask_style = style("ticker--ask") + flash if flash_ask else style("ticker--ask")
        spread = measures.spread(self.bid, self.ask)
        mid = measures.mid(self.bid, self.ask)
        bps = measures.spread_bps(self.bid, self.ask)
        text = Text()
        text.append("bid ", style("ticker--muted"))
        text.append(f"{format_price(self.bid)} × {format_qty(self.bid_qty)}", bid_style)
        text.append("\nask ", style("ticker--muted"))
        text.append(f"{format_price(self.ask)} × {format_qty(self.ask_qty)}", ask_style)
        text.append(f"\nspread {format_price(spread, price_decimals(mid))} ({format_bps(bps)})"
                    f"\nmid {format_price(mid)}\n{self.symbol} #{self.update_id}",
                    style("ticker--muted"))
        return text
