"""Replay: a recording paced back onto the bus, the engine and the TUI on it, the CLI's
replay flags, and the local exchange serving a recording."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.bus import Bus, Mode
from engine.config import ConfigError, Settings, load_settings
from engine.engine import Engine
from engine.errors import ReplayError
from engine.events import BookTicker, Event, LedgerEntry, Trade
from engine.exchange import ExchangeConfig, LocalExchange
from engine.source.base import Wiring
from engine.source.replay import Replay
from engine.status import ReplayProgress
from engine.storage import layout, schemas
from engine.storage.reader import read_events
from engine.subscription import Subscription
from engine.view.market import MarketState
from tests.helpers import ROOT, wait_until
from tests.recordings import EXAMPLES, MS0, REC, T0, book, builtins, trade, write
from tui.cli import ReplaySpec, main, parse_speed, parse_time


def test_parse_time_and_speed() -> None:
    assert parse_time("2024-08-08T23:55:00") == T0
    assert parse_time("2024-08-08T23:55:00Z") == T0
    assert parse_time("2024-08-09T01:55:00.5+02:00") == T0 + 500_000_000
    assert parse_time(str(MS0)) == T0
    assert parse_speed("max") == 0.0 and parse_speed("10") == 10.0 and parse_speed("0.5") == 0.5
    for bad in ("0", "-1", "fast", "nan", "inf1"):
        with pytest.raises(ConfigError, match="--speed"):
            parse_speed(bad)
    with pytest.raises(ConfigError, match="--to: 'soon'"):
        parse_time("soon", "--to")


# -- Replay (the source) ------------------------------------------------------------------


def Replayer(root: Path, bus: Bus, speed: float) -> Replay:  # noqa: N802 - reads as a class
    """A replay source on ``bus`` alone (no engine around it)."""
    settings = Settings()
    sub = Subscription(settings.streams, settings.symbols)
    return Replay(Wiring(settings, bus, sub, MarketState(sub)), root, speed=speed)


def second_of_events(root: Path, n: int = 11, span_ns: int = 1_000_000_000) -> list[Event]:
    events: list[Event] = []
    for i in range(n):
        ns = T0 + span_ns * i // (n - 1)
        events.append(trade(ns, i) if i % 2 else book(ns, i))
    write(root, events)
    return events


async def test_replayer_paces_by_recv_time_over_speed(tmp_path: Path) -> None:
    events = second_of_events(tmp_path)
    bus = Bus()
    got: list[Event] = []
    bus.subscribe(got.append, mode=Mode.INLINE)
    replayer = Replayer(tmp_path, bus, speed=10)
    loop = asyncio.get_running_loop()
    await replayer.start()
    await wait_until(lambda: replayer.total, 5, "the recording to load")
    t0 = loop.time()  # pacing starts once loaded
    await asyncio.wait_for(replayer.ended.wait(), 5)
    elapsed = loop.time() - t0
    assert 0.08 <= elapsed <= 0.5, elapsed  # 1 s recorded / 10
    assert replayer.error is None
    assert builtins(got) == builtins(events)
    assert replayer.progress() == ReplayProgress(11, 11, events[-1].recv_ns)


async def test_replayer_max_speed_delivers_everything_in_order(tmp_path: Path) -> None:
    events = second_of_events(tmp_path, n=5_000, span_ns=3_600 * 1_000_000_000)  # 1 h recorded
    bus = Bus()
    got: list[Event] = []

    async def consumer(event: Event) -> None:
        got.append(event)

    bus.subscribe(consumer, capacity=len(events))  # a task consumer, drained on stop
    bus.start()
    replayer = Replayer(tmp_path, bus, speed=float("inf"))
    started = time.monotonic()
    await replayer.start()
    await asyncio.wait_for(replayer.ended.wait(), 5)
    assert time.monotonic() - started < 3
    await bus.stop()
    assert replayer.published == bus.published == len(events)
    assert [(type(e), e.recv_ns) for e in got] == [(type(e), e.recv_ns) for e in events]


async def test_replayer_reports_a_bad_recording_and_can_stop_early(tmp_path: Path) -> None:
    broken = Replayer(tmp_path / "missing", Bus(), speed=0)
    await broken.start()
    await asyncio.wait_for(broken.ended.wait(), 5)
    assert isinstance(broken.error, ReplayError)
    second_of_events(tmp_path, n=3, span_ns=3_600 * 1_000_000_000)
    slow = Replayer(tmp_path, Bus(), speed=1)
    await slow.start()
    await wait_until(lambda: slow.published == 1, 5, "the first event")
    await slow.stop()
    assert slow.ended.is_set() and slow.published == 1 and slow.total == 3


# -- engine, headless, CLI ----------------------------------------------------------------


async def test_engine_in_replay_mode_status_and_toggles(tmp_path: Path) -> None:
    events = second_of_events(tmp_path, n=9)
    settings = load_settings(None, [("storage.enabled", False)])
    engine = Engine(settings, source=ReplaySpec(tmp_path, speed=0).source())
    assert isinstance(engine.source, Replay)
    engine.set_stream("bookTicker", False)  # a TUI toggle mutes that kind in replay
    got: list[Event] = []
    engine.bus.subscribe(got.append, kinds=[Trade, BookTicker], mode=Mode.INLINE)
    async with engine:
        await asyncio.wait_for(engine.source.ended.wait(), 5)
        engine.sample_rates()
        status = engine.status()
    assert status.connections == []
    assert status.replay == ReplayProgress(4, 9, events[-1].recv_ns)
    assert [(s.name, s.kind, s.symbol, s.messages, s.last_age_s) for s in status.streams] == [
        ("btcusdt@trade", "trade", "BTCUSDT", 4, 0.125)]
    assert [e.kind for e in got] == ["trade"] * 4 and engine.source.skipped == 5


async def test_tui_runs_unchanged_on_a_replay(tmp_path: Path) -> None:
    from tui.app import MonitorApp

    second_of_events(tmp_path, n=21)
    settings = load_settings(None, [("storage.enabled", False)])
    app = MonitorApp(settings, replay=ReplaySpec(tmp_path, speed=0))
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_until(lambda: app.engine is not None
                         and app.engine.source.ended.is_set(), 10, "the replay to finish")
        await wait_until(lambda: bool(app.engine and app.engine.market.recent_trades(
            "BTCUSDT", 1)), 5, "a trade shown")
        await pilot.pause(0.2)
        screen = app.export_screenshot().replace("&#160;", " ")
        tape = [app.query_one("TradeTape").render_line(y).text for y in range(1, 4)]
        replay = app.engine.source if app.engine is not None else None
        await pilot.press("t")
        await pilot.press("q")
        await wait_until(lambda: not app.is_running, 10, "app exited")
    # Asserted after the app is gone: a failure inside run_test() hangs Textual's teardown.
    assert "REPLAY 21/21" in screen  # the replay progress in the status bar
    assert all(":" in line for line in tape)  # recorded trades on the tape
    assert isinstance(replay, Replay) and replay.muted == {"trade"}


def run(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="160")
    return subprocess.run([sys.executable, "-m", "tui", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_headless_replay_at_max_speed_exits_by_itself(tmp_path: Path) -> None:
    second_of_events(tmp_path, n=101)
    write(tmp_path, [EXAMPLES[LedgerEntry]], name="ledger")
    proc = run("--no-ui", "--replay", str(tmp_path), "--speed", "max")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replay done: 102 of 102 events published" in proc.stdout
    assert "recorded 2024-08-08T23:55:00.000Z → 2024-08-08T23:55:01.000Z" in proc.stdout
    assert "btcusdt@trade" in proc.stdout and "btcusdt@bookTicker" in proc.stdout
    assert "stopped cleanly" in proc.stdout and "Traceback" not in proc.stderr


def test_headless_replay_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    from tests.helpers import finish, read_until

    second_of_events(tmp_path, n=3, span_ns=3_600 * 1_000_000_000)  # 1 h at real time
    proc = subprocess.Popen([sys.executable, "-m", "tui", "--no-ui", "--replay", str(tmp_path),
                             "--set", "ui.status_interval_s=0.1"],
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="160"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        read_until(proc, "replay 1/3", 20)  # loaded, first event out, next one due in 30 min
        proc.send_signal(signal.SIGINT)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "replay stopped: 1 of 3 events published" in out and "stopped cleanly" in out


def test_replay_flags_map_to_a_spec(tmp_path: Path) -> None:
    from tui.cli import build_parser, overrides_from_args, replay_from_args

    second_of_events(tmp_path, n=2)
    args = build_parser().parse_args(["--replay", str(tmp_path), "--speed", "10", "--from",
                                      "2024-08-08T23:55:00Z", "--to", str(MS0 + 1_000)])
    assert replay_from_args(args) == ReplaySpec(tmp_path, 10.0, T0, T0 + 1_000_000_000)
    assert ("storage.enabled", False) in overrides_from_args(args)  # never re-recorded
    assert replay_from_args(build_parser().parse_args([])) is None


@pytest.mark.parametrize(("argv", "needle"), [
    (["--replay", "{missing}"], "config error: --replay: {missing}: no such directory"),
    (["--replay", "{empty}"], "config error: --replay: {empty}: no recorded data"),
    (["--replay", "{data}", "--speed", "fast"], "config error: --speed: 'fast' is not allowed"),
    (["--replay", "{data}", "--from", "yesterday"], "config error: --from: 'yesterday' is not"),
    (["--replay", "{data}", "--from", "2024-08-09", "--to", "2024-08-08"],
     "config error: --to: '2024-08-08' is not after"),
    (["--speed", "10"], "config error: --speed: only valid with --replay DIR"),
])
def test_cli_replay_errors_are_one_line_exit_2(tmp_path: Path, capsys, argv: list[str],
                                               needle: str) -> None:
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "data": tmp_path}
    paths["empty"].mkdir()
    second_of_events(tmp_path, n=2)
    argv = [a.format(**paths) for a in argv]
    assert main([*argv, "--no-ui"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("binance-live: ")
    assert needle.format(**paths) in err


# -- the local exchange serving a recording ---------------------------------------------


async def test_exchange_serves_raw_frames_of_a_dataset(tmp_path: Path) -> None:
    lines = [line.split(" ", 1) for line in REC.read_text().splitlines()[:200]]
    frames = [(int(ns), text) for ns, text in lines if text.startswith('{"stream"')]
    half = len(frames) // 2
    for part, rows in (("b", frames[half:]), ("a", frames[:half])):  # file order ≠ time order
        table = pa.Table.from_arrays(
            [pa.array([ns for ns, _ in rows], schemas.NS),
             pa.array([1] * len(rows), pa.int64()),
             pa.array(range(len(rows)) if part == "a" else range(half, half + len(rows)),
                      pa.int64()),
             pa.array([text.encode() for _, text in rows], pa.binary())],
            schema=schemas.RAW_SCHEMA)
        folder = layout.partition_dir(tmp_path, layout.RAW_DIR, "", rows[0][0])
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / f"raw-{part}.parquet")
        (folder / f".raw-{part}-next.parquet.arrows").write_bytes(b"in progress")
    streams = "/".join(dict.fromkeys(json.loads(t)["stream"] for _, t in frames))
    expected = [text for _, text in frames]
    cfg = ExchangeConfig(symbols=("BTCUSDT",), recording=str(tmp_path), replay_speed=0, rate=0)
    got: list[str] = []
    async with LocalExchange(cfg) as ex, aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ex.ws_url}/stream?streams={streams}") as ws:
        assert "BTCUSDT" not in ex.markets
        while len(got) < len(expected):
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.TEXT, msg
            got.append(msg.data)
    assert got == expected and len(expected) > 150


async def test_live_recording_replays_the_same_events_in_the_same_order(tmp_path) -> None:
    """Engine records from the exchange; replaying the dataset gives back the exact stream."""
    import msgspec

    from engine.engine import Engine
    from engine.events import LedgerEntry
    from engine.exchange import ExchangeConfig, LocalExchange
    from engine.storage.schemas import RECORDED_TYPES
    from tests.helpers import settings_for, wait_until

    data = tmp_path / "data"
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=500)) as ex:
        engine = Engine(settings_for(
            ex, ("symbols", ["BTCUSDT", "ETHUSDT"]), ("storage.enabled", True),
            ("storage.directory", str(data)), ("streams.depthUpdate.enabled", True),
            ("streams.miniTicker.enabled", True)))
        live: list[object] = []
        engine.bus.subscribe(live.append, kinds=[*RECORDED_TYPES, LedgerEntry], mode="inline")
        await engine.start()
        await wait_until(lambda: len(live) > 3000, 15, "live events")
        await engine.stop()
    replayed = read_events(data)
    assert len(replayed) == len(live)
    assert [msgspec.to_builtins(e) for e in replayed] == [msgspec.to_builtins(e) for e in live]
    assert [e.kind for e in replayed] == [e.kind for e in live]
