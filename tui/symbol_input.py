"""``s``: switch to another symbol, validated against exchangeInfo before subscribing."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from engine.binance.streams import SYMBOL_RE
from engine.engine import Engine


class SymbolScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel",
                                                     id="symbol.cancel")]
    DEFAULT_CSS = """
    SymbolScreen { align: center middle; }
    SymbolScreen > Vertical { width: 60; height: auto; background: $surface;
                              border: round $primary; padding: 1 2; }
    SymbolScreen #error { color: $error; height: auto; }
    """

    def __init__(self, engine: Engine, known: list[str]) -> None:
        super().__init__()
        self.engine = engine
        self.known = known

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Symbol (streaming: {', '.join(self.known)})")
            yield Input(placeholder="e.g. ETHUSDT", id="symbol")
            yield Label("", id="error")

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        symbol = event.value.strip().upper()
        error = self.query_one("#error", Label)
        if not SYMBOL_RE.match(symbol):
            error.update(f"{event.value!r} is not a symbol: 2-20 letters or digits, e.g. BTCUSDT")
            return
        if symbol not in self.known:
            error.update(f"checking {symbol} with exchangeInfo…")
            problem = await self.engine.add_symbol(symbol)
            if problem:
                error.update(problem)
                return
        self.dismiss(symbol)

    def action_cancel(self) -> None:
        self.dismiss(None)
