"""The Textual monitor: candles, trade tape, book ticker, depth ladder and feed health.

Every panel *pulls* from the engine on one timer (``ui.refresh_hz``) and repaints only
when its data moved; no Textual message is ever posted per exchange message. Keys toggle
streams (live SUBSCRIBE/UNSUBSCRIBE), recording, polling, the kline interval and the
symbol; ``p`` freezes the display while the engine and recorder carry on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header

from engine.binance.streams import KLINE_INTERVALS
from engine.config import LIVE_WS_URL, Settings
from engine.engine import Engine
from tui.help import HelpScreen
from tui.keys import KEYS, TOGGLE_KEYS
from tui.panels.ladder import DepthLadder
from tui.panels.status import StatusBar, status_lines
from tui.panels.ticker import BookTickerPanel
from tui.settings import AppSettings, Ui
from tui.symbol_input import SymbolScreen
from tui.themes import MARKET_VARIABLES, THEME_BY_SETTING, THEMES
from tui.widgets import THEME_VARIABLES, Candles, TradeTape
from tui.widgets.trade_tape import LargeTrades

if TYPE_CHECKING:
    from tui.replay_args import ReplaySpec

_GROUPS = {"Streams": Binding.Group("Streams", compact=True)}


def _bindings() -> list[Binding]:
    """The Textual bindings of the key table (``tui.keys``)."""
    return [Binding(k.key, k.action, k.label, id=k.id, show=k.show, priority=k.priority,
                    group=_GROUPS.get(k.group)) for k in KEYS]


class MonitorApp(App[int]):
    TITLE = "binance-live"
    CSS = """
    #main { height: 1fr; }
    #left { width: 1fr; }
    #ladder { width: 42%; max-width: 64; }
    #candles { height: 1fr; border: round $panel; }
    #lower { height: 17; }
    #tape { width: 1fr; border: round $panel; }
    #ticker { width: 30; border: round $panel; height: 100%; }
    #ladder { border: round $panel; height: 100%; }
    .panel-title { color: $muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [*_bindings()]

    def __init__(self, settings: Settings, *, ui: Ui | None = None, demo: bool = False,
                 replay: ReplaySpec | None = None, engine: Engine | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.ui = ui or Ui()
        self.demo = demo
        self.replay = replay
        self.engine: Engine | None = engine
        self._own_engine = engine is None
        self.exchange: Any = None
        self.symbol = settings.symbols[0]
        self.frozen = False
        self._refresh_timer: Timer | None = None
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = THEME_BY_SETTING[self.ui.theme]

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**MARKET_VARIABLES, **THEME_VARIABLES}

    @property
    def mode(self) -> str:
        return "replay" if self.replay is not None else "demo" if self.demo else "live"

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield Candles(None, self.symbol, id="candles")
                with Horizontal(id="lower"):
                    yield TradeTape(None, self.symbol, id="tape",
                                    large=LargeTrades(self.ui.large_trade_notional,
                                                      self.ui.large_trade_multiple))
                    yield BookTickerPanel(id="ticker")
            yield DepthLadder(levels=self.ui.ladder_levels, id="ladder")
        yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self._apply_keymap()
        settings = self.settings
        if self.engine is None:
            if self.demo:
                from tui.demo import start_demo

                self.exchange, settings = await start_demo(settings)
                self.settings = settings
            self.engine = Engine(settings, source=self.replay.source()
                                 if self.replay is not None else None)
        for panel in (self.query_one(Candles), self.query_one(TradeTape)):
            panel.state = self.engine.market
        self._set_titles()
        if self._own_engine:
            await self.engine.start()
        if self.replay is not None:
            self.run_worker(self._announce_replay_end(), exit_on_error=False)
        self._refresh_timer = self.set_interval(1 / self.ui.refresh_hz, self.refresh_view)

    async def _announce_replay_end(self) -> None:
        """Tell the user when the recording has been played out (or failed)."""
        from engine.source.replay import Replay

        replay = self.engine.source if self.engine is not None else None
        if not isinstance(replay, Replay):
            return
        await replay.ended.wait()
        if replay.error is not None:
            self.notify(f"replay failed: {replay.error}", severity="error", timeout=30)
        elif replay.finished:
            self.notify(f"replay done: {replay.published:,} events", timeout=30)

    def _apply_keymap(self) -> None:
        remap = self.ui.remap()
        if remap:
            self.set_keymap(remap)

    def _set_titles(self) -> None:
        engine = self.engine
        interval = engine.kline_interval if engine is not None else ""
        if self.replay is not None:
            speed = f"{self.replay.speed:g}x" if self.replay.speed else "max"
            where = f"replay {self.replay.root} · speed {speed}"
        else:
            where = self.settings.connection.ws_url
        self.title = f"binance-live — {self.symbol} {interval}"
        self.sub_title = f"{self.mode} · {where}"

    # -- the one refresh timer ------------------------------------------------------------

    def refresh_view(self) -> None:
        engine = self.engine
        if engine is None:
            return
        status = engine.status()
        live_default = self.settings.connection.ws_url == LIVE_WS_URL
        self.query_one(StatusBar).show(status_lines(status, frozen=self.frozen, mode=self.mode,
                                                    live_default=live_default))
        if self.frozen:
            return
        symbol = self.symbol
        market = engine.market
        ticker = market.book_ticker(symbol)
        if ticker is not None:
            self.query_one(BookTickerPanel).show(symbol, ticker.bid_price, ticker.bid_qty,
                                                 ticker.ask_price, ticker.ask_qty,
                                                 ticker.update_id)
        else:
            self.query_one(BookTickerPanel).refresh()
        self._refresh_ladder(engine, symbol)
        self.query_one(TradeTape).refresh_from_state()
        self.query_one(Candles).refresh_from_state()

    def _refresh_ladder(self, engine: Engine, symbol: str) -> None:
        ladder = self.query_one(DepthLadder)
        book = engine.books.get(symbol) if engine.enabled.get("depthUpdate") else None
        if book is not None and not book.needs_snapshot:
            bids, asks = book.top(ladder.levels)
            ladder.update_book(bids, asks, "local book", book.update_id)
            return
        depth = engine.market.partial_depth(symbol)
        if depth is not None:
            ladder.update_book(depth.bids, depth.asks, f"depth{len(depth.bids)}",
                               depth.last_update_id)
        elif book is not None:
            ladder.update_book([], [], "local book syncing", 0)

    # -- actions --------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Grey out what makes no sense right now (None = shown but disabled)."""
        engine = self.engine
        if engine is None:
            return True
        if action == "interval" and not engine.enabled.get("kline"):
            return None
        if action in ("record", "polling") and self.replay is not None:
            return None
        if action == "next_symbol" and len(self.symbols) < 2:
            return None
        if action == "symbol" and self.replay is not None:
            return None
        return True

    @property
    def symbols(self) -> list[str]:
        return list(self.engine.symbols) if self.engine is not None else [self.symbol]

    def action_toggle_stream(self, kind: str) -> None:
        if self.engine is not None:
            on = self.engine.toggle_stream(kind)
            self.notify(f"{kind} {'on' if on else 'off'}", timeout=2)
            self.refresh_bindings()

    def action_polling(self) -> None:
        if self.engine is not None:
            on = not self.engine.status().polling
            self.engine.set_polling(on)
            self.notify(f"REST snapshot polling {'on' if on else 'off'}", timeout=2)

    async def action_record(self) -> None:
        """Start/stop recording; stopping finishes the open files (the engine keeps streaming)."""
        if self.engine is not None:
            await self.engine.set_recording(not self.engine.recording)
            state = self.engine.status().recording
            self.notify(f"recording {state.state if state else 'off'}", timeout=2)

    def action_freeze(self) -> None:
        self.frozen = not self.frozen
        for panel in (self.query_one(Candles), self.query_one(TradeTape),
                      self.query_one(DepthLadder), self.query_one(BookTickerPanel)):
            panel.frozen = self.frozen
        self.refresh_view()

    async def action_interval(self, step: int) -> None:
        if self.engine is None:
            return
        current = KLINE_INTERVALS.index(self.engine.kline_interval)
        new = KLINE_INTERVALS[(current + step) % len(KLINE_INTERVALS)]
        self.run_worker(self._switch_interval(new), exclusive=True, group="interval",
                        exit_on_error=False)

    async def _switch_interval(self, interval: str) -> None:
        """Resubscribe + REST backfill off the key handler, so keys stay responsive."""
        if self.engine is None:
            return
        await self.engine.set_kline_interval(interval)
        self._set_titles()

    def action_symbol(self) -> None:
        if self.engine is not None:
            self.push_screen(SymbolScreen(self.engine, self.symbols), self._switch_symbol)

    def action_next_symbol(self) -> None:
        symbols = self.symbols
        if len(symbols) > 1:
            self._switch_symbol(symbols[(symbols.index(self.symbol) + 1) % len(symbols)])

    def _switch_symbol(self, symbol: str | None) -> None:
        if not symbol:
            return
        self.symbol = symbol
        self.query_one(Candles).symbol = symbol
        self.query_one(TradeTape).symbol = symbol
        self.query_one(DepthLadder).update_book([], [], "switching", -1)
        self._set_titles()
        self.refresh_bindings()
        self.refresh_view()

    def action_next_theme(self) -> None:
        names = [t.name for t in THEMES]
        self.theme = names[(names.index(self.theme) + 1) % len(names)] \
            if self.theme in names else names[0]

    def action_help(self) -> None:
        keys = [(self.get_key_display(b), b.description or b.action) for b in _bindings()]
        self.push_screen(HelpScreen(keys))

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key, kind in TOGGLE_KEYS.items():
            yield SystemCommand(f"Toggle {kind} stream", f"SUBSCRIBE/UNSUBSCRIBE ({key})",
                                lambda k=kind: self.action_toggle_stream(k))
        yield SystemCommand("Start/stop recording", "Parquet recorder (r)", self.action_record)
        yield SystemCommand("Freeze display", "engine and recorder continue (p)",
                            self.action_freeze)
        yield SystemCommand("Switch symbol…", "validated against exchangeInfo (s)",
                            self.action_symbol)

    async def action_quit(self) -> None:
        # The refresh timer and the engine stop while the alternate screen is still up
        # (whatever they print stays inside Textual); then Textual leaves it.
        await self._stop_engine()
        self.exit(0)

    async def on_unmount(self) -> None:
        await self._stop_engine()  # any other exit path (errors, exit()) stops it too

    async def _stop_engine(self) -> None:
        """Not ``_shutdown``: that is Textual's own ``App._shutdown``, which closes the
        driver and waits for its writer thread to restore the terminal. Shadowing it
        skipped that, and in about 1 quit of 4 the restore sequences were lost."""
        if self._refresh_timer is not None:
            self._refresh_timer.stop()
            self._refresh_timer = None
        if self.engine is not None and self._own_engine:
            await self.engine.stop()
        self.engine = None if self._own_engine else self.engine
        if self.exchange is not None:
            await self.exchange.stop()
            self.exchange = None


def run_app(app: AppSettings, demo: bool = False, replay: ReplaySpec | None = None) -> int:
    return MonitorApp(app.engine, ui=app.ui, demo=demo, replay=replay).run() or 0
