"""The Textual monitor driven by Pilot against the local exchange (real sockets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from engine.config import load_settings
from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import settings_for, wait_until
from tui.app import MonitorApp
from tui.help import HelpScreen
from tui.panels.ladder import DepthLadder
from tui.symbol_input import SymbolScreen
from tui.widgets import TradeTape

SIZE = (150, 45)


def screen_text(app: MonitorApp) -> str:
    return app.export_screenshot().replace("&#160;", " ")


async def drive(app: MonitorApp, body: Callable[[Any], Awaitable[None]]) -> None:
    """Run ``body(pilot)``; always quit the app properly, then re-raise any failure.

    (An assertion escaping ``run_test`` while the engine is live stalls the teardown.)
    """
    failure: BaseException | None = None
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(lambda: app.engine is not None and app.engine.market is not None, 10,
                         "engine started")
        try:
            await body(pilot)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failure = exc
        if app.is_running:
            await app.action_quit()  # not the key: a modal screen may own "q"
            await wait_until(lambda: not app.is_running, 10, "app exited")
    if failure is not None:
        raise failure


def tape_lines(app: MonitorApp) -> list[str]:
    tape = app.query_one(TradeTape)
    return [tape.render_line(y).text for y in range(tape.size.height)]


async def test_panels_fill_and_toggle_key_resubscribes_live() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        app = MonitorApp(settings_for(ex, ("streams.depthUpdate.enabled", True)))

        async def body(pilot: Any) -> None:
            engine = app.engine
            await wait_until(lambda: bool(engine.market.recent_trades("BTCUSDT", 3)), 10,
                             "trades")
            await wait_until(lambda: app.query_one(DepthLadder).source == "local book", 15,
                             "ladder fed by the synced local book")
            await pilot.pause(0.2)
            text = screen_text(app)
            assert "spread" in text and "bps" in text and "imbalance" in text
            assert "● connected" in text and "REST weight" in text
            assert any("." in line and ":" in line for line in tape_lines(app)[1:4])
            await pilot.press("t")
            assert engine.enabled["trade"] is False
            await wait_until(lambda: "btcusdt@trade" not in ex.connections[0].streams, 10,
                             "UNSUBSCRIBE reached the exchange")
            await pilot.press("t")
            await wait_until(lambda: "btcusdt@trade" in ex.connections[0].streams, 10,
                             "SUBSCRIBE reached the exchange")
            assert ex.stats.connections_accepted == 1

        await drive(app, body)


async def test_freeze_stops_repainting_while_the_engine_continues() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=400)) as ex:
        app = MonitorApp(settings_for(ex))

        async def body(pilot: Any) -> None:
            engine = app.engine
            await wait_until(lambda: len(engine.market.recent_trades("BTCUSDT", 5)) == 5, 10,
                             "trades")
            await pilot.press("p")
            assert app.frozen
            await pilot.pause(0.1)
            frozen = tape_lines(app)
            seen = engine.status().published
            await wait_until(lambda: engine.status().published > seen + 200, 10,
                             "the engine keeps going")
            await pilot.pause(0.2)
            assert tape_lines(app) == frozen
            assert "FROZEN" in screen_text(app)
            await pilot.press("p")
            await wait_until(lambda: tape_lines(app) != frozen, 5, "repaint after unfreeze")

        await drive(app, body)


async def test_interval_keys_resubscribe_and_backfill() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=200)) as ex:
        app = MonitorApp(settings_for(ex))

        async def body(pilot: Any) -> None:
            engine = app.engine
            await wait_until(lambda: ex.connections and "btcusdt@kline_1m"
                             in ex.connections[0].streams, 10, "kline_1m")
            await pilot.press("right_square_bracket")
            await wait_until(lambda: engine.kline_interval == "3m", 10, "interval switched")
            await wait_until(lambda: "btcusdt@kline_3m" in ex.connections[0].streams
                             and "btcusdt@kline_1m" not in ex.connections[0].streams, 10,
                             "resubscribed")
            await pilot.press("left_square_bracket", "left_square_bracket")
            await wait_until(lambda: engine.kline_interval == "1s", 10, "back past 1m")
            await wait_until(lambda: "kline_1s" in app.title or "1s" in app.title, 5, "title")
            assert ex.stats.connections_accepted == 1

        await drive(app, body)


async def test_symbol_switch_validates_against_exchange_info() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=300)) as ex:
        app = MonitorApp(settings_for(ex))

        async def body(pilot: Any) -> None:
            engine = app.engine
            await pilot.press("s")
            assert isinstance(app.screen, SymbolScreen)
            await pilot.press(*"nopeusdt", "enter")
            await wait_until(lambda: "not a Binance spot symbol" in str(
                app.screen.query_one("#error").render()), 10, "unknown symbol refused")
            assert engine.symbols == ["BTCUSDT"]
            inp = app.screen.query_one("Input")
            inp.value = ""
            await pilot.press(*"ethusdt", "enter")
            await wait_until(lambda: app.symbol == "ETHUSDT", 10, "switched")
            assert engine.symbols == ["BTCUSDT", "ETHUSDT"]
            await wait_until(lambda: "ethusdt@trade" in ex.connections[0].streams, 10,
                             "ETH subscribed on the open connection")
            await wait_until(lambda: bool(engine.market.recent_trades("ETHUSDT", 1)), 10,
                             "ETH trades")
            await pilot.press("tab")
            assert app.symbol == "BTCUSDT"
            assert ex.stats.connections_accepted == 1

        await drive(app, body)


async def test_help_screen_lists_every_key() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=50)) as ex:
        app = MonitorApp(settings_for(ex))

        async def body(pilot: Any) -> None:
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.pause(0.2)
            text = screen_text(app)
            for word in ("Freeze", "REC", "Trade tape", "Depth ladder", "aggressor"):
                assert word in text, word
            await pilot.press("escape")
            assert not isinstance(app.screen, HelpScreen)

        await drive(app, body)


async def test_demo_mode_starts_its_own_exchange_and_shows_events() -> None:
    app = MonitorApp(load_settings(None, [("storage.enabled", False)]), demo=True)

    async def body(pilot: Any) -> None:
        assert app.exchange is not None
        assert app.engine.settings.connection.ws_url.startswith("ws://127.0.0.1:")
        await wait_until(lambda: bool(app.engine.market.book_ticker("BTCUSDT")), 10,
                         "demo events")
        assert "DEMO" in screen_text(app)

    await drive(app, body)
    assert app.exchange is None  # stopped with the app


async def test_r_key_stops_recording_files_finish_and_stop_growing(tmp_path) -> None:
    data = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        settings = settings_for(ex, ("storage.enabled", True), ("storage.directory", str(data)),
                                ("storage.flush_interval_s", 0.1))
        app = MonitorApp(settings)
        files: dict[Any, int] = {}

        async def body(pilot: Any) -> None:
            engine = app.engine
            await wait_until(lambda: engine.recording, 10, "recording")
            await wait_until(lambda: engine.live.recorder.status().rows_written > 100, 10, "rows")
            assert not list(data.rglob("*.parquet"))  # still open (hidden) files
            await pilot.press("r")
            await wait_until(lambda: not engine.recording, 10, "recording off")
            files.update({p: p.stat().st_size for p in data.rglob("*.parquet")})
            assert files and not list(data.rglob(".*.arrows"))
            seen = engine.status().published
            await wait_until(lambda: engine.status().published > seen + 100, 10, "streaming")
            assert {p: p.stat().st_size for p in data.rglob("*.parquet")} == files
            assert "REC off" in screen_text(app)
            await pilot.press("r")
            await wait_until(lambda: engine.recording, 10, "recording again")
            await wait_until(lambda: engine.live.recorder.status().rows_written > 50, 10, "rows")

        await drive(app, body)
    assert len(list(data.rglob("*.parquet"))) > len(files)  # q flushed the new rows
    assert not list(data.rglob(".*.arrows"))
