"""Market widgets drawn with Textual's Line API from a pulled ``MarketState``.

Each widget repaints only when its panel's change counter moved; the app calls
``refresh_from_state()`` on its timer. The app must declare the colour variables the
widgets' CSS uses: merge :data:`THEME_VARIABLES` into ``App.get_theme_variable_defaults``.
"""

from __future__ import annotations

from tui.widgets.candles import Candles
from tui.widgets.trade_tape import TradeTape

# Defaults of the colour variables the widgets use (a theme may override each one).
THEME_VARIABLES: dict[str, str] = {
    "bid": "#26a69a",  # buy aggressor, up candle
    "ask": "#ef5350",  # sell aggressor, down candle
    "bid-bar": "#1b4d47",  # volume of up candles
    "ask-bar": "#5c2624",  # volume of down candles
    "live-candle": "#90caf9",  # the bar still open
    "muted": "#8a8f98",  # headers, axis
}

__all__ = ["THEME_VARIABLES", "Candles", "TradeTape"]
