"""Headless mode (``--no-ui``): the engine plus a compact Rich status every few seconds.

Imports no Textual. Ctrl-C and SIGTERM stop the engine cleanly (consumers drained)
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from engine.bus import Mode, Overflow
from engine.rest.clock_sync import ClockStatus
from engine.config.settings import Settings
from engine.engine import Engine, EngineStatus, StreamStatus
from engine.events import to_builtins

if TYPE_CHECKING:
    from engine.storage.replay import ReplaySpec


def status_table(status: EngineStatus) -> Group:
    """One row per connection and per stream, then a summary line (wrapped, not cropped)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("stream / connection")
    table.add_column("state")
    table.add_column("msg/s", justify="right")
    table.add_column("total", justify="right")
    table.add_column("last", justify="right")
    table.add_column("p50/p99 ms", justify="right")
    for c in status.connections:
        state = c.state
        if c.state == "reconnecting":
            state = f"reconnecting in {c.retry_in_s:.1f}s"
        table.add_row(f"conn #{c.conn_id} (shard {c.shard}, {c.subscribed}/{c.streams} streams)",
                      f"[{'green' if c.state == 'open' else 'yellow'}]{state}[/]", "", "",
                      f"{c.last_rx_age_s:.1f}s" if c.state == "open" else "", "")
        if c.last_error and c.state != "open":
            table.add_row(f"  [dim]{c.last_error}[/]", "", "", "", "", "")
    for s in status.streams:
        if not s.enabled and not s.messages:
            continue
        state = "on" if s.enabled else "[dim]off[/]"
        if s.stale:
            state = f"[red]stale {s.last_age_s:.1f}s[/]" if s.last_age_s >= 0 else "[red]stale[/]"
        table.add_row(f"  {s.name}", state, f"{s.rate:,.1f}", f"{s.messages:,}",
                      f"{s.last_age_s:.1f}s" if s.last_age_s >= 0 else "-", latency_cell(s))
    drops = sum(c.dropped for c in status.consumers)
    errors = sum(c.errors for c in status.consumers)
    summary = (f"up {status.uptime_s:,.0f}s · {status.total_rate:,.0f} msg/s · "
                     f"reconnects {status.reconnects} · bad frames {status.bad_frames} · "
                     f"consumer drops {drops} errors {errors}"
                     + (f" · {clock_line(status.clock)}" if status.clock is not None else "")
                     + (f" · snapshots {status.snapshots} (errors {status.snapshot_errors})"
                        if status.polling else "")
                     + f" · {rest_line(status)}"
                     + (f" · replay {status.replay[0]:,}/{status.replay[1]:,} at "
                        f"{utc_time(status.replay[2])}" if status.replay is not None else "")
                     + f" · {gaps_line(status)}{book_line(status)} · {recording_line(status)}")
    return Group(table, Text(summary))


def gaps_line(status: EngineStatus) -> str:
    """Id gaps seen, and how many REST backfill closed (or could not)."""
    bf = status.backfill
    if bf is None or not bf.gaps:
        return f"gaps {status.gaps}"
    return (f"gaps {status.gaps} (backfilled {bf.filled}, {bf.rows:,} rows"
            + (f", failed {bf.failed}" if bf.failed else "") + ")")


def book_line(status: EngineStatus) -> str:
    """Local diff-depth books: state, levels, resyncs, and the REST audit tally."""
    books = [b for b in status.books if b.syncs or b.state == "synced" or b.applied]
    if not books:
        return ""
    parts = [f"book {b.symbol} {b.state} {b.bid_levels}/{b.ask_levels} lv"
             + (f" resyncs {b.resyncs} ({b.last_resync})" if b.resyncs else "") for b in books]
    ok = sum(b.audits_ok for b in books)
    bad = sum(b.audits_diverged for b in books)
    return " · " + " · ".join(parts) + f" · book audits ok {ok}/diverged {bad}"


def latency_cell(s: StreamStatus) -> str:
    """Offset-corrected receive latency; "n/a" for streams without an event time."""
    if s.latency_p50_ms is None or s.latency_p99_ms is None:
        return "n/a" if s.messages else "-"
    return f"{_ms(s.latency_p50_ms)}/{_ms(s.latency_p99_ms)}"


def _ms(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def clock_line(clock: ClockStatus) -> str:
    """Exchange clock offset (exchange − local) and the round trip it was measured with."""
    if clock.offset_ms is None:
        return "clock offset n/a" + (f" (sync failed ×{clock.failures})" if clock.failures
                                     else " (syncing)")
    off = clock.offset_ms
    text = f"clock offset {off:+.0f}" if abs(off) >= 10 else f"clock offset {off:+.1f}"
    text += f" ms (rtt {_ms(clock.rtt_ms or 0.0)} ms"
    if clock.failures:
        text += f", {clock.failures} failed syncs"
    return text + ")"


def rest_line(status: EngineStatus) -> str:
    """REST weight used of the budget, and any 429/418 pause in force."""
    b = status.budget
    text = f"REST weight {b.used:,}/{b.limit:,}"
    if b.waiting:
        text += f" ({b.waiting} waiting)"
    if b.blocked_for_s > 0:
        text += f" · REST {'BANNED' if b.banned else 'PAUSED'} {b.blocked_for_s:.0f}s: " \
                f"{b.block_reason}"
    if status.symbols_unknown:
        text += f" · UNKNOWN SYMBOLS {', '.join(status.symbols_unknown)}"
    return text


def recording_line(status: EngineStatus) -> str:
    """REC state for humans: rows and bytes written, or why recording failed."""
    rec = status.recording
    if rec is None or rec.state == "off":
        return "REC off"
    if rec.state == "failed":
        return f"REC FAILED: {rec.last_error}"
    return (f"REC {rec.rows_written + rec.rows_pending:,} rows ({rec.rows_written:,} on disk, "
            f"{rec.bytes_written / 1e6:,.1f} MB, {rec.files_finished} files) → {rec.directory}")


def utc_time(ns: int) -> str:
    """Recorded time for humans: ISO-8601 UTC with milliseconds."""
    if not ns:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns // 1_000_000 % 1000:03d}Z"


async def _set_when_done(done: asyncio.Event, stop: asyncio.Event) -> None:
    await done.wait()
    stop.set()


def _event_printer(out: Any) -> Any:
    def print_event(event: Any) -> None:
        d = to_builtins(event)
        d.pop("conn", None)
        d.pop("recv_ns", None)
        out.write(" ".join(f"{k}={v}" for k, v in d.items()) + "\n")

    return print_event


async def _main(settings: Settings, demo: bool, replay: ReplaySpec | None = None) -> int:
    console = Console(highlight=False)
    exchange = None
    if demo:
        from tui.demo import start_demo

        exchange, settings = await start_demo(settings)
        console.print(f"[bold]demo[/]: local exchange at {settings.connection.ws_url}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = replay.engine(settings) if replay is not None else Engine(settings)
    if settings.verbose:
        engine.bus.subscribe(_event_printer(sys.stdout), name="verbose", mode=Mode.THREAD,
                             policy=Overflow.DROP_OLDEST, capacity=50_000)
    if replay is not None:
        console.print(f"binance-live: replay {replay.root} · speed "
                      f"{replay.speed:g}x · Ctrl-C to stop" if replay.speed else
                      f"binance-live: replay {replay.root} · speed max · Ctrl-C to stop")
    else:
        console.print(f"binance-live: {', '.join(settings.symbols)} · "
                      f"{len(settings.stream_names())} streams · {settings.connection.ws_url} · "
                      "Ctrl-C to stop")
    await engine.start()
    tasks: set[asyncio.Task[None]] = set()

    def toggle_recording() -> None:
        """SIGUSR1: start/stop recording without stopping the feed (headless ``r``)."""
        task = loop.create_task(engine.set_recording(not engine.recording))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    if engine.replay is None:
        loop.add_signal_handler(signal.SIGUSR1, toggle_recording)
    watcher = None
    if engine.replay is not None:  # a finished replay ends the run like Ctrl-C does
        watcher = loop.create_task(_set_when_done(engine.replay.done, stop))
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), settings.ui.status_interval_s)
            except TimeoutError:
                console.print(status_table(engine.status()))
    finally:
        if watcher is not None:
            watcher.cancel()
        await engine.stop()
        if exchange is not None:
            await exchange.stop()
    if engine.replay is not None:
        return _replay_summary(console, engine)
    console.print("stopped cleanly")
    return 0


def _replay_summary(console: Console, engine: Engine) -> int:
    """Final table and totals; exit 1 only when the recording could not be read."""
    r = engine.replay
    assert r is not None
    console.print(status_table(engine.status()))
    if r.error is not None:
        console.print(f"replay failed: {r.error}")
        return 1
    console.print(f"replay {'done' if r.finished else 'stopped'}: {r.published:,} of {r.total:,} "
                  f"events published · recorded {utc_time(r.first_ns)} → {utc_time(r.last_ns)}")
    console.print("stopped cleanly")
    return 0


def run_headless(settings: Settings, demo: bool = False, replay: ReplaySpec | None = None) -> int:
    return asyncio.run(_main(settings, demo, replay))
