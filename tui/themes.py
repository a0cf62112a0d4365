"""Themes: dark, light and a colour-blind-safe one, plus the market colour variables.

Widgets style bids, asks and highlights only through ``$bid``/``$ask``/… so a theme can
change them; the colour-blind theme uses blue/orange instead of green/red.
"""

from __future__ import annotations

from textual.theme import Theme

MARKET_VARIABLES: dict[str, str] = {
    "bid": "#26a69a",
    "ask": "#ef5350",
    "bid-bar": "#1b4d47",
    "ask-bar": "#5c2624",
    "flash": "#ffd54f",
    "large-trade": "#ffd54f",
    "live-candle": "#90caf9",
    "muted": "#8a8f98",
}

_COLOURBLIND = {"bid": "#3b8bd9", "ask": "#f59b23", "bid-bar": "#1f3f63",
                "ask-bar": "#6b4512"}

THEMES = (
    Theme(name="binance-dark", primary="#f0b90b", secondary="#3b8bd9", accent="#f0b90b",
          background="#0b0e11", surface="#12161c", panel="#1e2329", foreground="#eaecef",
          warning="#f0b90b", error="#f6465d", success="#0ecb81", dark=True,
          variables=dict(MARKET_VARIABLES)),
    Theme(name="binance-light", primary="#c99400", secondary="#1e6fbf", accent="#c99400",
          background="#fafafa", surface="#ffffff", panel="#eaecef", foreground="#1e2329",
          warning="#c99400", error="#d9304e", success="#03a66d", dark=False,
          variables={**MARKET_VARIABLES, "bid": "#03a66d", "ask": "#d9304e",
                     "bid-bar": "#c6eadb", "ask-bar": "#f6cfd6", "flash": "#c99400",
                     "large-trade": "#c99400", "live-candle": "#1e6fbf", "muted": "#6b7280"}),
    Theme(name="binance-colorblind", primary="#f0b90b", secondary="#3b8bd9",
          accent="#f0b90b", background="#0b0e11", surface="#12161c", panel="#1e2329",
          foreground="#eaecef", warning="#f0b90b", error="#f59b23", success="#3b8bd9",
          dark=True, variables={**MARKET_VARIABLES, **_COLOURBLIND}),
)

THEME_BY_SETTING = {"dark": "binance-dark", "light": "binance-light",
                    "colorblind": "binance-colorblind"}
