"""The shared pull-and-repaint machinery of the market widgets.

A widget shows a *snapshot* of one symbol's panel data, taken when that panel's change
counter moved (``refresh_from_state``, called by the app's timer), and renders it with
the Line API into strips built once per snapshot and size. Freezing stops taking
snapshots, so the last frame stays on screen while the engine (and recorder) go on.
"""

from __future__ import annotations

from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

from engine.view.market import MarketState


class MarketWidget(Widget):
    """Base: ``market`` + ``symbol`` in, strips out; subclasses snapshot and build.

    ``market`` may be None at construction (the engine starts after compose); assign
    ``widget.market`` (alias ``widget.state``) once it exists.
    """

    can_focus = False

    def __init__(self, market: MarketState | None, symbol: str, *, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:  # noqa: A002
        super().__init__(name=name, id=id, classes=classes)
        self._market = market
        self._symbol = symbol.upper()
        self._frozen = False
        self._seen: Any = None  # data key of the snapshot shown
        self._strips: list[Strip] | None = None
        self.snapshots = 0  # how many snapshots were taken (tests, diagnostics)

    # -- public API ---------------------------------------------------------------------

    @property
    def market(self) -> MarketState | None:
        return self._market

    @market.setter
    def market(self, value: MarketState | None) -> None:
        self._market = value
        self._take()

    state = market  # alias

    @property
    def symbol(self) -> str:
        return self._symbol

    @symbol.setter
    def symbol(self, value: str) -> None:
        """Switch symbol; shown at once (an explicit switch repaints even when frozen)."""
        value = value.upper()
        if value != self._symbol:
            self._symbol = value
            self._take()

    @property
    def frozen(self) -> bool:
        return self._frozen

    @frozen.setter
    def frozen(self, value: bool) -> None:
        """Frozen: keep showing the last frame (CSS class ``-frozen``)."""
        self._frozen = value
        self.set_class(value, "-frozen")

    def refresh_from_state(self) -> bool:
        """Repaint if this panel's data changed since the last snapshot; cheap otherwise.

        Returns whether a new snapshot was taken.
        """
        if self._frozen:
            return False
        if self._data_key() == self._seen:
            return False
        self._take()
        return True

    # -- subclass hooks -----------------------------------------------------------------

    def _data_key(self) -> Any:
        """What changes when the data shown changes (usually the panel's seq)."""
        raise NotImplementedError

    def _snapshot(self) -> None:
        """Copy what will be drawn out of the market state."""
        raise NotImplementedError

    def _build(self, width: int, height: int) -> list[Strip]:
        """All lines of the widget for the current snapshot and size."""
        raise NotImplementedError

    # -- machinery ----------------------------------------------------------------------

    def _take(self) -> None:
        self._seen = self._data_key()
        self._snapshot()
        self.snapshots += 1
        self._strips = None
        if self.is_mounted:
            self.refresh()

    def on_mount(self) -> None:
        self._take()

    def on_resize(self) -> None:
        self._size_changed()
        self._strips = None
        self.refresh()

    def _size_changed(self) -> None:
        """Hook: the widget was resized (before its strips are rebuilt)."""

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips = None  # theme switched: rebuild with the new colours

    def render_line(self, y: int) -> Strip:
        width, height = self.size
        strips = self._strips
        if strips is None or len(strips) != height or (strips and strips[0].cell_length
                                                       != width):
            strips = self._strips = [s.adjust_cell_length(width, self.rich_style)
                                     for s in self._build(width, height)]
        if 0 <= y < len(strips):
            return strips[y]
        return Strip.blank(width, self.rich_style)

    def component_style(self, *names: str) -> Style:
        """The widget's base style plus component class styles (later ones win)."""
        style = self.rich_style
        for name in names:
            style = style + self.get_component_rich_style(name, partial=True)
        return style


def text_strip(parts: list[tuple[str, Style]]) -> Strip:
    """A strip from (text, style) runs."""
    return Strip([Segment(text, style) for text, style in parts if text])
