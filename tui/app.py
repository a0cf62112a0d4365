"""The Textual monitor (first cut): feed health and the latest event of each stream.

The full trading panels (tape, candles, ladder) come with the TUI issue; this screen is
already wired the way they will be: it *pulls* engine status and a keep-latest
consumer's state on a timer, never one UI message per exchange message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Static

from engine.bus import Mode, Overflow
from engine.config import Settings
from engine.engine import Engine
from engine.models import to_builtins
from tui.headless import status_table

if TYPE_CHECKING:
    from engine.replay import ReplaySpec

TOGGLE_KEYS = {
    "t": "trade",
    "a": "aggTrade",
    "k": "kline",
    "b": "bookTicker",
    "d": "depthPartial",
    "u": "depthUpdate",
    "m": "miniTicker",
}


class MonitorApp(App[int]):
    TITLE = "binance-live"
    CSS = """
    #status { height: auto; padding: 0 1; }
    #latest { padding: 0 1; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"toggle('{kind}')", f"{kind}", id=f"toggle.{kind}")
          for key, kind in TOGGLE_KEYS.items()),
        Binding("r", "record", "REC", id="record"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, settings: Settings, demo: bool = False,
                 replay: ReplaySpec | None = None) -> None:
        super().__init__()
        self.settings = settings
        self.demo = demo
        self.replay = replay
        self.engine: Engine | None = None
        self.exchange: Any = None
        self.latest: dict[tuple[str, str], Any] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("connecting…", id="status")
        yield Static("", id="latest")
        yield Footer()

    async def on_mount(self) -> None:
        settings = self.settings
        if self.demo:
            from engine.demo import start_demo

            self.exchange, settings = await start_demo(settings)
        if self.replay is not None:
            speed = f"{self.replay.speed:g}x" if self.replay.speed else "max"
            self.sub_title = f"replay {self.replay.root} · speed {speed}"
            self.engine = self.replay.engine(settings)
        else:
            self.sub_title = f"{', '.join(settings.symbols)} · {settings.connection.ws_url}"
            self.engine = Engine(settings)
        self.engine.bus.subscribe(self._remember, name="ui", mode=Mode.INLINE,
                                  policy=Overflow.KEEP_LATEST)
        await self.engine.start()
        self.set_interval(1 / settings.ui.refresh_hz, self.refresh_view)
        if self.engine.replay is not None:
            self.run_worker(self._announce_replay_end(), exit_on_error=False)

    async def _announce_replay_end(self) -> None:
        """The screen keeps the final state; just say that the recording is over."""
        replay = self.engine.replay if self.engine is not None else None
        if replay is None:
            return
        await replay.done.wait()
        if replay.error is not None:
            self.notify(f"replay failed: {replay.error}", severity="error", timeout=30)
        else:
            self.notify(f"replay done: {replay.published:,} events", timeout=30)

    def _remember(self, event: Any) -> None:
        self.latest[(event.kind, getattr(event, "symbol", ""))] = event

    def refresh_view(self) -> None:
        if self.engine is None:
            return
        self.query_one("#status", Static).update(status_table(self.engine.status()))
        lines = []
        for (kind, symbol), event in sorted(self.latest.items()):
            fields = to_builtins(event)
            for key in ("kind", "recv_ns", "conn", "symbol", "bids", "asks"):
                fields.pop(key, None)
            text = " ".join(f"{k}={v}" for k, v in list(fields.items())[:8])
            lines.append(f"{symbol:<10} {kind:<12} {text}")
        self.query_one("#latest", Static).update("\n".join(lines))

    def action_toggle(self, kind: str) -> None:
        if self.engine is not None:
            on = self.engine.toggle_stream(kind)
            self.notify(f"{kind} {'on' if on else 'off'}")

    async def action_record(self) -> None:
        """Start/stop recording; stopping finishes the open files (the engine keeps streaming)."""
        if self.engine is not None:
            await self.engine.set_recording(not self.engine.recording)
            state = self.engine.status().recording
            self.notify(f"recording {state.state if state else 'off'}")

    async def on_unmount(self) -> None:
        await self._shutdown()  # any exit path (ctrl+q, errors) stops the engine cleanly

    async def action_quit(self) -> None:
        await self._shutdown()
        self.exit(0)

    async def _shutdown(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
            self.engine = None
        if self.exchange is not None:
            await self.exchange.stop()
            self.exchange = None


def run_app(settings: Settings, demo: bool = False, replay: ReplaySpec | None = None) -> int:
    return MonitorApp(settings, demo, replay).run() or 0
