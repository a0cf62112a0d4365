"""Shared test helpers: repository paths, condition waits (never bare sleeps), settings aimed
at a local exchange, the CLI in-process, subprocess output and recorded Parquet."""

from __future__ import annotations

import asyncio
import os
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from engine.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]  # the repository
# real recordings and doc fixtures, beside the repository (or where BINANCE_LIVE_SHARED says:
# `make mutate` runs the tests from a copy of the tree in mutants/)
SHARED = Path(os.environ.get("BINANCE_LIVE_SHARED", ROOT.parent / "shared"))


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def settings_for(ex: Any, *extra: tuple[str, Any], **conn: Any) -> Settings:
    """Default settings pointed at a local exchange, with fast reconnect timings."""
    overrides: list[tuple[str, Any]] = [
        ("connection.ws_url", ex.ws_url), ("connection.rest_url", ex.rest_url),
        ("connection.backoff_initial_s", 0.02), ("connection.backoff_max_s", 0.2),
        ("storage.enabled", False),
    ]
    overrides += [(f"connection.{k}", v) for k, v in conn.items()]
    overrides += list(extra)
    return load_settings(None, overrides)


def run_cli(capsys: Any, *argv: str) -> tuple[int, str]:
    """``binance-live`` in-process: its exit code and what it wrote to stderr."""
    from tui.cli import main

    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors and --help
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def read_until(proc: subprocess.Popen[bytes], needle: str, timeout: float) -> str:
    """Read output until it contains ``needle`` (bounded by ``timeout``)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=0.1):
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
            if needle.encode() in seen:
                return seen.decode(errors="replace")
    raise AssertionError(f"{needle!r} not seen within {timeout}s; output:\n"
                         f"{seen[-3000:].decode(errors='replace')}")


def finish(proc: subprocess.Popen[bytes]) -> str:
    out, _ = proc.communicate(timeout=20)
    return out.decode(errors="replace")


def read_kind(root: Path, kind: str) -> list[dict[str, Any]]:
    """Every recorded row of one kind, in (recv_time, seq) order, timestamps as int ns."""
    table = ds.dataset(root / kind, format="parquet", partitioning="hive").to_table()
    table = table.sort_by([("recv_time", "ascending"), ("seq", "ascending")])
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table.to_pylist()


async def receive_texts(ws: Any, n: int, timeout: float) -> list[str]:
    """The next ``n`` frames of an aiohttp WebSocket, each of which must be text."""
    import aiohttp

    out: list[str] = []
    while len(out) < n:
        msg = await ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append(msg.data)
    return out
