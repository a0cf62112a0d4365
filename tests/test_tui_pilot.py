"""The first-cut Textual monitor, driven by Pilot against the local exchange."""

from __future__ import annotations

from engine.exchange import ExchangeConfig, LocalExchange
from tests.conftest import settings_for, wait_until
from tui.app import MonitorApp


async def test_toggle_key_unsubscribes_live_and_q_quits_cleanly() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=200)) as ex:
        app = MonitorApp(settings_for(ex))
        async with app.run_test(size=(110, 32)) as pilot:
            await wait_until(lambda: app.engine is not None and len(ex.connections) == 1, 10,
                             "engine connected")
            await wait_until(lambda: ("trade", "BTCUSDT") in app.latest, 10, "a trade shown")
            await pilot.pause(0.2)
            screen = app.export_screenshot()
            assert "btcusdt@trade" in screen and "open" in screen
            await pilot.press("t")
            assert app.engine is not None and app.engine.enabled["trade"] is False
            await wait_until(lambda: "btcusdt@trade" not in ex.connections[0].streams, 10,
                             "UNSUBSCRIBE reached the exchange")
            await pilot.press("t")
            await wait_until(lambda: "btcusdt@trade" in ex.connections[0].streams, 10,
                             "SUBSCRIBE reached the exchange")
            assert ex.stats.connections_accepted == 1
            engine = app.engine
            await pilot.press("q")
            await wait_until(lambda: not app.is_running, 10, "app exited")
        assert engine is not None and engine.manager.shards[0].state == "stopped"


async def test_demo_mode_starts_its_own_exchange_and_shows_events() -> None:
    from engine.config import load_settings

    app = MonitorApp(load_settings(None, [("storage.enabled", False)]), demo=True)
    async with app.run_test(size=(110, 32)) as pilot:
        await wait_until(lambda: app.exchange is not None and app.engine is not None, 10,
                         "demo exchange started")
        assert app.engine is not None
        assert app.engine.settings.connection.ws_url.startswith("ws://127.0.0.1:")
        await wait_until(lambda: ("bookTicker", "BTCUSDT") in app.latest, 10, "demo events")
        await pilot.press("q")
        await wait_until(lambda: not app.is_running, 10, "app exited")
    assert app.exchange is None  # stopped with the app


async def test_r_key_stops_recording_files_finish_and_stop_growing(tmp_path) -> None:
    data = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        settings = settings_for(ex, ("storage.enabled", True), ("storage.directory", str(data)),
                                ("storage.flush_interval_s", 0.1))
        app = MonitorApp(settings)
        async with app.run_test(size=(110, 32)) as pilot:
            await wait_until(lambda: app.engine is not None and app.engine.recording, 10,
                             "recording")
            engine = app.engine
            assert engine is not None
            await wait_until(lambda: engine.recorder.status().rows_written > 100, 10, "rows")
            assert not list(data.rglob("*.parquet"))  # still open (hidden) files
            await pilot.press("r")
            await wait_until(lambda: not engine.recording, 10, "recording off")
            files = {p: p.stat().st_size for p in data.rglob("*.parquet")}
            assert files and not list(data.rglob(".*.arrows"))
            trades = engine.status().streams
            await wait_until(lambda: engine.status().streams != trades, 10, "still streaming")
            await pilot.pause(0.3)
            assert {p: p.stat().st_size for p in data.rglob("*.parquet")} == files
            assert "REC off" in app.export_screenshot().replace("&#160;", " ")
            await pilot.press("r")
            await wait_until(lambda: engine.recording, 10, "recording again")
            await pilot.press("q")
            await wait_until(lambda: not app.is_running, 10, "app exited")
        assert len(list(data.rglob("*.parquet"))) > len(files)  # q flushed the new rows
