"""The ``?`` help screen: every key, plus what the numbers on screen mean."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

NOTES = """
**Trade tape** — newest first. Green (bid colour) = a *buyer* took the offer (buy
aggressor, `m=false`); red (ask colour) = a *seller* hit the bid (`m=true`, "buyer is
maker"). Highlighted rows are large trades (`ui.large_trade_notional`, or
`ui.large_trade_multiple` × the rolling median notional).

**Candles** — OHLC of the selected interval with a volume strip; the last candle is live
(not closed yet) until Binance sends `x=true`.

**Book ticker** — best bid/ask and sizes, spread in price and basis points, mid. A side
flashes when its price or size changes.

**Depth ladder** — asks above, bids below, best levels in the middle; size, cumulative size
and bars scaled to the largest cumulative size on screen; imbalance = (bid − ask size) /
total over the visible levels. Source: the local order book (diff depth + snapshot, exact)
or the partial-depth stream.

**Status** — connection state, msg/s, reconnects, id gaps, REST weight used of the
budget, recording (REC rows, bytes, files; FAILED with the reason), consumer drops.
FROZEN: the display is paused; streaming and recording continue.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 90; height: 90%; background: $surface;
                                  border: round $primary; padding: 0 1; }
    """

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        keys = " · ".join(f"`{key}` {what}" for key, what in self.keys)
        text = f"# binance-live\n\n**Keys** — {keys}\n\n{NOTES}"
        with VerticalScroll():
            yield Markdown(text)
