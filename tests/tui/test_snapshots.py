"""SVG snapshots of the main screen and the help screen: fixed data, fixed size, no clock.

The engine is never started (no sockets); its market state is filled from the real
BTCUSDT recording and fixed candles, so every number on screen is deterministic.
Update after an intended UI change with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import pytest

from engine.config import load_settings
from engine.engine import Engine
from engine.events import Kline, KlineBar, PartialDepth
from engine.feed.decode import FrameDecoder
from tests.helpers import SHARED
from tui.app import MonitorApp

SIZE = (150, 45)
RECORDING = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"


def deterministic_app() -> MonitorApp:
    settings = load_settings(None, [("storage.enabled", False), ("ui.theme", "dark")])
    engine = Engine(settings)
    market = engine.market
    dec = FrameDecoder()
    for line in RECORDING.read_bytes().splitlines()[:1200]:
        ns, _, frame = line.partition(b" ")
        event = dec.decode(frame, int(ns), 1)
        if isinstance(event, PartialDepth):  # the REST snapshot line
            event.symbol = "BTCUSDT"
        if event is not None:
            market.on_event(event)
    price = 61800.0
    for i in range(80):  # fixed candles: a gentle zig-zag with volume
        o = price
        c = price + (12.5 if i % 3 else -9.0) * (1 + i % 4)
        bar = KlineBar(open_time=1723161000000 + i * 60_000,
                       close_time=1723161059999 + i * 60_000, symbol="BTCUSDT",
                       interval="1m", first_trade_id=i, last_trade_id=i, open=o, close=c,
                       high=max(o, c) + 6.0, low=min(o, c) - 4.0, volume=5.0 + (i * 7) % 13,
                       trades=10, closed=i < 79, quote_volume=1.0, taker_buy_volume=1.0,
                       taker_buy_quote_volume=1.0)
        market.on_event(Kline(event_time=bar.close_time, symbol="BTCUSDT", bar=bar))
        price = c
    return MonitorApp(settings, engine=engine)


@pytest.fixture
def app() -> MonitorApp:
    if not RECORDING.exists():
        pytest.skip("../shared recording not available")
    return deterministic_app()


def test_main_screen(snap_compare, app: MonitorApp) -> None:
    assert snap_compare(app, terminal_size=SIZE)


def test_help_screen(snap_compare, app: MonitorApp) -> None:
    assert snap_compare(app, press=["question_mark"], terminal_size=SIZE)


def test_frozen_light_theme(snap_compare, app: MonitorApp) -> None:
    app.theme = "binance-light"
    assert snap_compare(app, press=["p"], terminal_size=SIZE)
