"""Headless mode (``--no-ui``): the engine plus a compact Rich status every few seconds.

Imports no Textual. Ctrl-C and SIGTERM stop the engine cleanly (consumers drained)
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from engine.bus import Mode, Overflow
from engine.engine import Engine
from engine.events import to_builtins
from engine.feed.link import LinkState
from engine.status import EngineStatus
from engine.tasks import TaskSet
from tui.settings import AppSettings
from tui.status_text import (
    book_line,
    clock_line,
    gaps_line,
    latency_cell,
    recording_line,
    rest_line,
    utc_time,
)

if TYPE_CHECKING:
    from tui.replay_args import ReplaySpec


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
        is_open = c.state is LinkState.OPEN
        state = f"reconnecting in {c.retry_in_s:.1f}s" \
            if c.state is LinkState.RECONNECTING else str(c.state)
        table.add_row(f"conn #{c.conn_id} (shard {c.shard}, {c.subscribed}/{c.streams} streams)",
                      f"[{'green' if is_open else 'yellow'}]{state}[/]", "", "",
                      f"{c.last_rx_age_s:.1f}s" if is_open else "", "")
        if c.last_error and not is_open:
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
                     + (f" · {rest_line(status)}" if status.budget is not None else "")
                     + (f" · replay {status.replay.published:,}/{status.replay.total:,} at "
                        f"{utc_time(status.replay.position_ns)}"
                        if status.replay is not None else "")
                     + f" · {gaps_line(status)}{book_line(status)} · {recording_line(status)}")
    return Group(table, Text(summary))


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


async def _main(app: AppSettings, demo: bool, replay: ReplaySpec | None = None) -> int:
    console = Console(highlight=False)
    settings = app.engine
    exchange = None
    if demo:
        from tui.demo import start_demo

        exchange, settings = await start_demo(settings)
        console.print(f"[bold]demo[/]: local exchange at {settings.connection.ws_url}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = Engine(settings, source=replay.source() if replay is not None else None)
    if app.verbose:
        engine.bus.subscribe(_event_printer(sys.stdout), name="verbose", mode=Mode.THREAD,
                             policy=Overflow.DROP_OLDEST, capacity=50_000)
    if replay is not None:
        console.print(f"binance-live: replay {replay.root} · speed "
                      f"{replay.speed:g}x · Ctrl-C to stop" if replay.speed else
                      f"binance-live: replay {replay.root} · speed max · Ctrl-C to stop")
    else:
        console.print(f"binance-live: {', '.join(settings.symbols)} · "
                      f"{len(engine.subscription.names())} streams · "
                      f"{settings.connection.ws_url} · Ctrl-C to stop")
    await engine.start()
    tasks = TaskSet("headless")

    def toggle_recording() -> None:
        """SIGUSR1: start/stop recording without stopping the feed (headless ``r``)."""
        tasks.spawn(engine.set_recording(not engine.recording), name="toggle-recording")

    if replay is None:
        loop.add_signal_handler(signal.SIGUSR1, toggle_recording)
    # a finished replay ends the run like Ctrl-C does
    tasks.spawn(_set_when_done(engine.source.ended, stop), name="source-ended")
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), app.ui.status_interval_s)
            except TimeoutError:
                console.print(status_table(engine.status()))
    finally:
        if replay is None:
            loop.remove_signal_handler(signal.SIGUSR1)
        await tasks.close()
        await engine.stop()
        if exchange is not None:
            await exchange.stop()
    if replay is not None:
        return _replay_summary(console, engine)
    console.print("stopped cleanly")
    return 0


def _replay_summary(console: Console, engine: Engine) -> int:
    """Final table and totals; exit 1 only when the recording could not be read."""
    from engine.source.replay import Replay

    r = engine.source
    assert isinstance(r, Replay)
    console.print(status_table(engine.status()))
    if r.error is not None:
        console.print(f"replay failed: {r.error}")
        return 1
    console.print(f"replay {'done' if r.finished else 'stopped'}: {r.published:,} of {r.total:,} "
                  f"events published · recorded {utc_time(r.first_ns)} → {utc_time(r.last_ns)}")
    console.print("stopped cleanly")
    return 0


def run_headless(app: AppSettings, demo: bool = False, replay: ReplaySpec | None = None) -> int:
    return asyncio.run(_main(app, demo, replay))
