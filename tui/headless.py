"""Headless mode (``--no-ui``): the engine plus a compact Rich status every few seconds.

Imports no Textual. Ctrl-C and SIGTERM stop the engine cleanly (consumers drained)
and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from engine.bus import Mode, Overflow
from engine.config import Settings
from engine.engine import Engine, EngineStatus
from engine.models import to_builtins


def status_table(status: EngineStatus) -> Table:
    """One row per connection and per stream; a caption with the totals."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("stream / connection")
    table.add_column("state")
    table.add_column("msg/s", justify="right")
    table.add_column("total", justify="right")
    table.add_column("last", justify="right")
    for c in status.connections:
        state = c.state
        if c.state == "reconnecting":
            state = f"reconnecting in {c.retry_in_s:.1f}s"
        table.add_row(f"conn #{c.conn_id} (shard {c.shard}, {c.subscribed}/{c.streams} streams)",
                      f"[{'green' if c.state == 'open' else 'yellow'}]{state}[/]", "", "",
                      f"{c.last_rx_age_s:.1f}s" if c.state == "open" else "")
        if c.last_error and c.state != "open":
            table.add_row(f"  [dim]{c.last_error}[/]", "", "", "", "")
    for s in status.streams:
        if not s.enabled and not s.messages:
            continue
        table.add_row(f"  {s.name}", "on" if s.enabled else "[dim]off[/]", f"{s.rate:,.1f}",
                      f"{s.messages:,}", f"{s.last_age_s:.1f}s" if s.last_age_s >= 0 else "-")
    drops = sum(c.dropped for c in status.consumers)
    errors = sum(c.errors for c in status.consumers)
    table.caption = (f"up {status.uptime_s:,.0f}s · {status.total_rate:,.0f} msg/s · "
                     f"reconnects {status.reconnects} · bad frames {status.bad_frames} · "
                     f"consumer drops {drops} errors {errors}"
                     + (f" · snapshots {status.snapshots} (errors {status.snapshot_errors}, "
                        f"weight {status.rest.used_weight})" if status.polling else ""))
    return table


def _event_printer(out: Any) -> Any:
    def print_event(event: Any) -> None:
        d = to_builtins(event)
        d.pop("conn", None)
        d.pop("recv_ns", None)
        out.write(" ".join(f"{k}={v}" for k, v in d.items()) + "\n")

    return print_event


async def _main(settings: Settings, demo: bool) -> int:
    console = Console(highlight=False)
    exchange = None
    if demo:
        from engine.demo import start_demo

        exchange, settings = await start_demo(settings)
        console.print(f"[bold]demo[/]: local exchange at {settings.connection.ws_url}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    engine = Engine(settings)
    if settings.verbose:
        engine.bus.subscribe(_event_printer(sys.stdout), name="verbose", mode=Mode.THREAD,
                             policy=Overflow.DROP_OLDEST, capacity=50_000)
    console.print(f"binance-live: {', '.join(settings.symbols)} · "
                  f"{len(settings.stream_names())} streams · {settings.connection.ws_url} · "
                  "Ctrl-C to stop")
    await engine.start()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), settings.ui.status_interval_s)
            except TimeoutError:
                console.print(status_table(engine.status()))
    finally:
        await engine.stop()
        if exchange is not None:
            await exchange.stop()
    console.print("stopped cleanly")
    return 0


def run_headless(settings: Settings, demo: bool = False) -> int:
    return asyncio.run(_main(settings, demo))
