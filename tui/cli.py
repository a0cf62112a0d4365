"""Command line: parse flags into validated settings, then run headless or the TUI.

Textual is imported only when the TUI is actually started, so ``--no-ui`` (a
long-running recorder on a server) never loads it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, NoReturn

import yaml

from engine.binance.streams import KLINE_INTERVALS, SNAPSHOT_LIMITS
from engine.errors import ConfigError
from tui.replay_args import ReplaySpec, parse_speed, parse_time
from tui.settings import load_app_settings

PROG = "binance-live"


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line and exit 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Live Binance spot market monitor and Parquet recorder.",
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog="Any setting can also be set with --set KEY=VALUE, "
                       "e.g. --set streams.kline.interval=5m.")
    p.add_argument("-s", "--symbol", action="append", metavar="SYMBOL",
                   help="symbol to stream, e.g. BTCUSDT (repeat or comma-separate for several)")
    p.add_argument("--config", type=Path, metavar="PATH",
                   help="settings file (default: ~/.config/binance-live/settings.yaml if "
                        "present, else the packaged config/settings.yaml)")
    p.add_argument("--no-storage", action="store_true", help="stream only, write no files")
    p.add_argument("--storage-dir", metavar="DIR", help="where recordings go")
    p.add_argument("--record-raw", action="store_true",
                   help="also record every raw frame as received (storage.raw)")
    p.add_argument("--no-trade", action="store_true", help="do not subscribe to the trade stream")
    p.add_argument("--kline-interval", metavar="I",
                   help="kline interval: " + " ".join(KLINE_INTERVALS))
    p.add_argument("--depth-update", action="store_true",
                   help="also stream diff depth (<symbol>@depth@100ms)")
    p.add_argument("--order-book-snapshot", action="store_true",
                   help="poll full order-book snapshots over REST")
    p.add_argument("--order-book-limit", metavar="N",
                   help="snapshot depth: " + " ".join(map(str, SNAPSHOT_LIMITS)))
    p.add_argument("--order-book-interval", metavar="SECONDS", help="snapshot period")
    p.add_argument("--ws-url", metavar="URL", help="WebSocket base URL")
    p.add_argument("--rest-url", metavar="URL", help="REST base URL")
    p.add_argument("--no-ui", action="store_true",
                   help="headless: print a status line every few seconds")
    p.add_argument("--demo", action="store_true",
                   help="run against the bundled local exchange (no network needed)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every event (headless)")
    p.add_argument("--replay", type=Path, metavar="DIR",
                   help="play a recording (a --storage-dir) instead of connecting")
    p.add_argument("--speed", metavar="X",
                   help="replay speed: 1 (real time, default), 10, max, or any positive number")
    p.add_argument("--from", dest="replay_from", metavar="T",
                   help="replay from T: ISO-8601 UTC (2024-08-08T23:55:00[Z]) or epoch ms")
    p.add_argument("--to", dest="replay_to", metavar="T", help="replay up to T (exclusive)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting by its dotted key")
    return p


def _typed(text: str) -> Any:
    """CLI strings become YAML scalars so the validator sees ints, floats and bools."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def overrides_from_args(args: argparse.Namespace) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = [parse_override(item) for item in args.set]
    if args.symbol:
        out.append(("symbols", [s for item in args.symbol for s in item.split(",") if s]))
    if args.no_storage:
        out.append(("storage.enabled", False))
    if args.storage_dir:
        out.append(("storage.directory", args.storage_dir))
    if args.record_raw:
        out.append(("storage.raw", True))
    if args.no_trade:
        out.append(("streams.trade.enabled", False))
    if args.kline_interval:
        out.append(("streams.kline.interval", args.kline_interval))
    if args.depth_update:
        out.append(("streams.depthUpdate.enabled", True))
    if args.order_book_snapshot:
        out.append(("order_book.enabled", True))
    if args.order_book_limit is not None:
        out.append(("order_book.limit", _typed(args.order_book_limit)))
    if args.order_book_interval is not None:
        out.append(("order_book.interval_s", _typed(args.order_book_interval)))
    if args.ws_url:
        out.append(("connection.ws_url", args.ws_url))
    if args.rest_url:
        out.append(("connection.rest_url", args.rest_url))
    if args.verbose:
        out.append(("verbose", True))
    if args.replay is not None:
        out.append(("storage.enabled", False))  # a replay is never recorded again
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """``--set key.path=value`` with a YAML-typed value (``true``, ``5``, ``[a, b]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: {text!r} is not allowed; expected KEY=VALUE, "
                          "e.g. streams.kline.interval=5m")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def replay_from_args(args: argparse.Namespace) -> ReplaySpec | None:
    """The replay asked for (None without ``--replay``); bad values raise ConfigError."""
    given = [f for f, v in (("--speed", args.speed), ("--from", args.replay_from),
                            ("--to", args.replay_to)) if v is not None]
    if args.replay is None:
        if given:
            raise ConfigError(f"{given[0]}: only valid with --replay DIR")
        return None
    if args.demo:
        raise ConfigError("--demo: not valid with --replay DIR")
    spec = ReplaySpec(
        args.replay, parse_speed(args.speed) if args.speed is not None else 1.0,
        parse_time(args.replay_from, "--from") if args.replay_from is not None else None,
        parse_time(args.replay_to, "--to") if args.replay_to is not None else None)
    if spec.start_ns is not None and spec.end_ns is not None and spec.end_ns <= spec.start_ns:
        raise ConfigError(f"--to: {args.replay_to!r} is not after --from {args.replay_from!r}")
    spec.check()
    return spec


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_app_settings(args.config, overrides_from_args(args))
        replay = replay_from_args(args)
    except ConfigError as exc:
        sys.stderr.write(f"{PROG}: config error: {exc}\n")
        return 2
    if not args.demo and replay is None:
        from engine.rest.exchange_info import unknown_symbols

        conn = settings.engine.connection
        unknown = asyncio.run(unknown_symbols(conn.rest_url, settings.engine.symbols))
        if unknown:
            sys.stderr.write(f"{PROG}: config error: symbols: {', '.join(map(repr, unknown))} "
                             f"not listed by {conn.rest_url}/api/v3/exchangeInfo"
                             " (not a Binance spot symbol)\n")
            return 2
    if args.no_ui:
        from tui.headless import run_headless

        return run_headless(settings, demo=args.demo, replay=replay)
    from tui.app import run_app

    return run_app(settings, demo=args.demo, replay=replay)


def entry() -> None:
    raise SystemExit(main())
