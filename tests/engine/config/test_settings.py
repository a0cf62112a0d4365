"""Settings: the bundled defaults, and bounds checked when loading."""

from __future__ import annotations

import pytest

from engine.config.settings import ConfigError, Settings, load_settings


def test_defaults_from_bundled_yaml() -> None:
    s = load_settings()
    assert s.symbols == ("BTCUSDT",)
    assert s.stream_names() == ["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m",
                                "btcusdt@bookTicker", "btcusdt@depth20@100ms"]
    assert s.connection.ws_url == "wss://stream.binance.com:9443"
    assert s.connection.rest_url == "https://api.binance.com"
    assert s.storage.enabled and not s.order_book.enabled


def test_yaml_and_code_defaults_agree() -> None:
    """config/settings.yaml documents the defaults; it must not silently differ from them."""
    assert load_settings() == Settings()


def test_backoff_bounds_checked() -> None:
    with pytest.raises(ConfigError, match=r"backoff_max_s: 0\.1 is smaller than"):
        load_settings(None, [("connection.backoff_max_s", 0.1)])
