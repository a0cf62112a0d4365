"""``binance-live-exchange`` (and ``python -m engine.exchange``) prints its URLs, serves,
and exits 0 on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import ROOT

SCRIPT = Path(sys.executable).with_name("binance-live-exchange")


@pytest.mark.parametrize("command", [[str(SCRIPT)], [sys.executable, "-m", "engine.exchange"]],
                         ids=["console-script", "python-m"])
async def test_cli_serves_and_exits_cleanly_on_sigint(command: list[str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, "--port", "0", "--symbols", "BTCUSDT", "--rate", "max", cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        rest = line.split("rest ")[1].split()[0]
        assert line.startswith("local exchange: ws ws://127.0.0.1:")
        async with aiohttp.ClientSession() as http, http.get(f"{rest}/api/v3/ping") as r:
            assert r.status == 200 and await r.json() == {}
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_the_console_script_shows_its_flags() -> None:
    import subprocess

    out = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.startswith("usage: binance-live-exchange")
    for flag in ("--port", "--symbols", "--rate", "--recording", "--speed",
                 "--replay-wait-all"):
        assert flag in out
