"""The monitor's keys as data: binding id, default key, action, label (no Textual here).

One table for the app's bindings, the help screen, the README key table and the
validation of ``ui.keymap`` (which the headless path also loads, without Textual).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    id: str  # what ``ui.keymap`` remaps: "record=R"
    key: str  # Textual key name(s), comma-separated
    action: str
    label: str
    group: str = ""  # shown compact under this group name in the footer
    show: bool = True
    priority: bool = False


TOGGLE_KEYS = {
    "t": "trade",
    "a": "aggTrade",
    "k": "kline",
    "b": "bookTicker",
    "d": "depthPartial",
    "u": "depthUpdate",
    "m": "miniTicker",
}

KEYS: tuple[Key, ...] = (
    *(Key(f"toggle.{kind}", key, f"toggle_stream('{kind}')", kind, group="Streams")
      for key, kind in TOGGLE_KEYS.items()),
    Key("polling", "o", "polling", "REST poll"),
    Key("record", "r", "record", "REC"),
    Key("freeze", "p", "freeze", "Freeze"),
    Key("interval.prev", "left_square_bracket", "interval(-1)", "◂ interval"),
    Key("interval.next", "right_square_bracket", "interval(1)", "interval ▸"),
    Key("symbol", "s", "symbol", "Symbol"),
    Key("symbol.next", "tab", "next_symbol", "Next symbol", priority=True),
    Key("theme", "c", "next_theme", "Colours", show=False),
    Key("help", "question_mark", "help", "Help"),
    Key("quit", "q", "quit", "Quit"),
)

BINDING_IDS: tuple[str, ...] = tuple(k.id for k in KEYS)
