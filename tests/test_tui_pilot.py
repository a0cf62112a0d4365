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
