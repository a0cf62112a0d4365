"""Settings: defaults come from the schema, files from the user's XDG location or the
packaged default, and bounds are checked when loading."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import ConfigError, Settings, load_settings, user_config_path
from engine.config.files import packaged_default
from engine.subscription import Subscription


def test_the_packaged_file_states_exactly_the_schema_defaults() -> None:
    assert load_settings() == Settings()


def test_default_streams() -> None:
    s = load_settings()
    assert s.symbols == ("BTCUSDT",)
    assert Subscription(s.streams, s.symbols).names() == [
        "btcusdt@trade", "btcusdt@aggTrade", "btcusdt@kline_1m", "btcusdt@bookTicker",
        "btcusdt@depth20@100ms"]
    assert s.connection.ws_url == "wss://stream.binance.com:9443"
    assert s.connection.rest_url == "https://api.binance.com"
    assert s.storage.enabled and not s.order_book.enabled


def test_backoff_bounds_checked() -> None:
    with pytest.raises(ConfigError, match=r"backoff_max_s: 0\.1 is smaller than"):
        load_settings(None, [("connection.backoff_max_s", 0.1)])


def user_file(root: Path, text: str) -> Path:
    path = root / "binance-live" / "settings.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_a_user_config_at_the_xdg_location_is_read(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    user_file(tmp_path, "symbols: [ETHUSDT]\nstorage: {directory: /tmp/rec}\n")
    assert user_config_path() == tmp_path / "binance-live" / "settings.yaml"
    s = load_settings()
    assert s.symbols == ("ETHUSDT",) and s.storage.directory == "/tmp/rec"
    assert s.streams == Settings().streams  # keys the file leaves out keep their defaults


def test_the_config_flag_wins_over_the_user_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    user_file(tmp_path, "symbols: [ETHUSDT]\n")
    explicit = tmp_path / "other.yaml"
    explicit.write_text("symbols: [BNBUSDT]\n")
    assert load_settings(explicit).symbols == ("BNBUSDT",)


def test_a_relative_xdg_config_home_is_ignored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/dir")  # the XDG spec says: ignore it
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_config_path() == tmp_path / ".config" / "binance-live" / "settings.yaml"


def test_a_bad_user_file_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = user_file(tmp_path, "streams: {kline: {interval: 7m}}\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith("streams.kline.interval: '7m' is not allowed")
    path.write_text("symbols: [BTCUSDT\n")
    with pytest.raises(ConfigError, match=f"config: '{path}' is not valid YAML at line"):
        load_settings()


def test_the_packaged_default_is_the_repository_file() -> None:
    repo = Path(__file__).resolve().parents[3] / "config" / "settings.yaml"
    assert Path(str(packaged_default())).resolve() == repo  # editable install: the checkout


def test_front_end_sections_are_skipped_here_but_named_in_errors() -> None:
    assert load_settings(None, [("ui.theme", "light"), ("verbose", True)]) == Settings()
    with pytest.raises(ConfigError, match="allowed keys: symbols, streams, storage, "
                                          "order_book, connection, ui, verbose"):
        load_settings(None, [("colour", "red")])
