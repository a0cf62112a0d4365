"""The command line: flags map to settings, and every error path is one line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.subscription import Subscription
from tests.helpers import ROOT, run_cli
from tui.settings import load_app_settings


def test_seed_flags_map_to_settings(monkeypatch) -> None:
    from tui.cli import build_parser, overrides_from_args

    args = build_parser().parse_args([
        "-s", "ethusdt", "--no-storage", "--no-trade", "--order-book-snapshot",
        "--order-book-limit", "5000", "--order-book-interval", "10", "--depth-update",
        "--ws-url", "ws://127.0.0.1:1", "--rest-url", "http://127.0.0.1:1", "-v",
        "--set", "streams.kline.interval=5m", "--set", "streams.miniTicker.enabled=true"])
    app = load_app_settings(None, overrides_from_args(args))
    s = app.engine
    names = Subscription(s.streams, s.symbols).names()
    assert s.symbols == ("ETHUSDT",)
    assert not s.storage.enabled
    assert not s.streams.trade.enabled
    assert s.order_book.enabled and s.order_book.limit == 5000 and s.order_book.interval_s == 10
    assert s.streams.depthUpdate.enabled
    assert s.connection.ws_url == "ws://127.0.0.1:1"
    assert s.connection.rest_url == "http://127.0.0.1:1"
    assert app.verbose
    assert s.streams.kline.interval == "5m"
    assert "ethusdt@depth@100ms" in names
    assert "ethusdt@miniTicker" in names
    assert "ethusdt@trade" not in names


def test_several_symbols_comma_or_repeated() -> None:
    from tui.cli import build_parser, overrides_from_args

    args = build_parser().parse_args(["-s", "btcusdt,ethusdt", "-s", "BNBUSDT", "-s", "btcusdt"])
    s = load_app_settings(None, overrides_from_args(args)).engine
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "BNBUSDT")


@pytest.mark.parametrize(("argv", "expected"), [
    (["--set", "streams.kline.interval=2m"],
     "streams.kline.interval: '2m' is not allowed; allowed: 1s, 1m, 3m"),
    (["--kline-interval", "7m"], "streams.kline.interval: '7m' is not allowed; allowed: 1s"),
    (["--order-book-limit", "7"],
     "order_book.limit: 7 is not allowed; allowed: 5, 10, 20, 50, 100, 500, 1000, 5000"),
    (["--order-book-limit", "lots"], "order_book.limit: 'lots' is not allowed; expected an"),
    (["--order-book-interval", "0"], "order_book.interval_s: 0 is too small; minimum is 0.1"),
    (["--set", "streams.depthPartial.levels=15"],
     "streams.depthPartial.levels: 15 is not allowed; allowed: 5, 10, 20"),
    (["--set", "streams.depthUpdate.speed_ms=250"],
     "streams.depthUpdate.speed_ms: 250 is not allowed; allowed: 100, 1000"),
    (["-s", "BTC-USDT"], "symbols: 'BTC-USDT' is not a valid symbol"),
    (["-s", "b"], "symbols: 'b' is not a valid symbol"),
    (["--set", "streams.bogus.enabled=true"], "streams.bogus: unknown key; allowed keys: trade"),
    (["--set", "nope=1"], "nope: unknown key; allowed keys: symbols"),
    (["--set", "streams.trade.enabled=maybe"],
     "streams.trade.enabled: 'maybe' is not allowed; expected true or false"),
    (["--set", "connection.stale_after_s=soon"],
     "connection.stale_after_s: 'soon' is not allowed; expected a number"),
    (["--set", "connection.max_streams_per_connection=2000"],
     "connection.max_streams_per_connection: 2000 is too large; maximum is 1024"),
    (["--ws-url", "http://x"], "connection.ws_url: 'http://x' is not allowed; expected a URL"),
    (["--rest-url", "ftp://x"], "connection.rest_url: 'ftp://x' is not allowed"),
    (["--set", "streams=3"], "streams: expected a mapping, got 3"),
    (["--set", "novalue"], "--set: 'novalue' is not allowed; expected KEY=VALUE"),
    (["--config", "/nonexistent/settings.yaml"], "config: file '/nonexistent/settings.yaml' not"),
    (["--set", "connection.rollover_at=25:00"],
     "connection.rollover_at: '25:00' is not allowed; expected HH:MM (UTC, 00:00 to 23:59)"),
    (["--set", "connection.rollover_at=noon"], "connection.rollover_at: 'noon' is not allowed"),
    (["--set", "connection.redundancy=3"],
     "connection.redundancy: 3 is not allowed; allowed: 1, 2"),
    (["--set", "connection.rollover_after_s=0"],
     "connection.rollover_after_s: 0 is not allowed; expected seconds > 0"),
    (["--set", "storage.backfill=maybe"],
     "storage.backfill: 'maybe' is not allowed; expected true or false"),
    (["--set", "ui.theme=pink"],
     "ui.theme: 'pink' is not allowed; allowed: dark, light, colorblind"),
    (["--set", "ui.keymap=[R]"],
     "ui.keymap: 'R' is not allowed; expected binding_id=key such as record=R"),
    (["--set", "ui.keymap=[bogus=R]"],
     "ui.keymap: 'bogus=R': unknown binding id 'bogus'; allowed: toggle.trade,"),
    (["--set", "ui.keymap=[record=]"], "ui.keymap: 'record=': '' is not a key name"),
    (["--set", "ui.refresh_hz=0"], "ui.refresh_hz: 0 is too small; minimum is 1.0"),
    (["--set", "ui=3"], "ui: expected a mapping, got 3"),
    (["--set", "verbose=loud"], "verbose: 'loud' is not allowed; expected true or false"),
    (["--set", "nope.x=1"], "nope: unknown key; allowed keys: symbols, streams, storage, "
                            "order_book, connection, ui, verbose"),
    (["-s", "btcusdt,ethusdt", "--order-book-snapshot", "--order-book-limit", "5000",
      "--order-book-interval", "2"],
     "order_book.interval_s: polling 2 symbol(s) at limit 5000 (weight 250) every 2s needs "
     "15,000 weight/min, over the 4,800 polling may use of Binance's 6,000/min; use "
     "order_book.interval_s >= 6.25 or a smaller order_book.limit"),
])
def test_config_errors_are_one_line_exit_2(capsys, argv: list[str], expected: str) -> None:
    code, err = run_cli(capsys, *argv, "--no-ui")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("binance-live: config error: ")
    assert expected in lines[0]
    assert "Traceback" not in err


def test_a_bad_keymap_never_starts_the_tui(capsys, monkeypatch) -> None:
    """``ui.keymap: ["R"]`` once left the TUI stuck at "starting…": now it is refused
    before the UI is even imported."""
    import tui.app

    def must_not_run(*args: object, **kwargs: object) -> int:
        raise AssertionError("the TUI started with a bad keymap")

    monkeypatch.setattr(tui.app, "run_app", must_not_run)
    code, err = run_cli(capsys, "--set", "ui.keymap=[R]", "--demo")
    assert code == 2
    assert err.strip().splitlines() == [
        "binance-live: config error: ui.keymap: 'R' is not allowed; expected binding_id=key "
        "such as record=R"]


def test_bad_yaml_file(tmp_path, capsys) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("symbols: [BTCUSDT\nstreams: {")
    code, err = run_cli(capsys, "--config", str(bad), "--no-ui")
    assert code == 2 and "is not valid YAML at line" in err and len(err.strip().splitlines()) == 1
    bad.write_text("- just\n- a list\n")
    code, err = run_cli(capsys, "--config", str(bad), "--no-ui")
    assert code == 2 and "must contain a mapping" in err


def test_yaml_file_wrong_type(tmp_path, capsys) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("symbols: [ETHUSDT]\nstreams:\n  kline: {interval: 1x}\n")
    code, err = run_cli(capsys, "--config", str(cfg), "--no-ui")
    assert code == 2 and "streams.kline.interval: '1x' is not allowed" in err


def test_unknown_flag_is_one_line_exit_2(capsys) -> None:
    code, err = run_cli(capsys, "--frobnicate")
    assert code == 2
    assert err.strip().splitlines() == [
        "binance-live: error: unrecognized arguments: --frobnicate (see --help)"]


def test_real_subprocess_exit_code_and_help() -> None:
    """The console entry point itself: exit 2, one line, no traceback; --help exits 0."""
    bad = subprocess.run([sys.executable, "-m", "tui", "--no-ui", "--order-book-limit", "3"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "binance-live: config error: order_book.limit: 3 is not allowed; allowed: "
        "5, 10, 20, 50, 100, 500, 1000, 5000"]
    ok = subprocess.run([sys.executable, "-m", "tui", "--help"], capture_output=True, text=True,
                        timeout=60, cwd=ROOT)
    assert ok.returncode == 0
    for flag in ("--symbol", "--no-storage", "--no-trade", "--order-book-snapshot",
                 "--order-book-limit", "--order-book-interval", "--depth-update", "--config",
                 "--ws-url", "--rest-url", "--no-ui", "--demo", "--verbose", "--set"):
        assert flag in ok.stdout
