"""``binance-live-exchange`` (and ``python -m engine.exchange``) prints its URLs, serves,
and exits 0 on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
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
                 "--replay-wait-all", "--replay-loops", "--replay-seconds", "--replay-hold",
                 "--replay-cache", "--report"):
        assert flag in out


async def test_cli_benchmark_protocol_hold_release_report(tmp_path: Path) -> None:
    """What bench/suite.py relies on: a held, looped replay released by SIGUSR2, ended by
    SIGUSR1, 'REPLAY-END' and 'REPORT' lines whose counts match what the client got."""
    from tests.helpers import SHARED, wait_until

    rec = SHARED / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"
    if not rec.exists():
        pytest.skip("../shared (real recordings) is not available")
    frames = [ln.split(" ", 1)[1] for ln in rec.read_text().splitlines()
              if ln.split(" ", 1)[1].startswith('{"stream"')]
    cache = tmp_path / "rec.passes"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine.exchange", "--port", "0", "--symbols", "BTCUSDT",
        "--rate", "0", "--recording", str(rec), "--replay-cache", str(cache), "--speed", "0",
        "--replay-hold", "--replay-loops", "0", "--replay-seconds", "30", "--report",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        ws_url = line.split("ws ")[1].split()[0]
        streams = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade"
        got: list[str] = []
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"{ws_url}/stream?streams={streams}", max_msg_size=1 << 24) as ws:
            with pytest.raises(asyncio.TimeoutError):
                await ws.receive(timeout=0.5)  # held

            async def read() -> None:  # a client reads all along
                async for msg in ws:
                    assert msg.type == aiohttp.WSMsgType.TEXT, msg
                    got.append(msg.data)

            reader = asyncio.ensure_future(read())
            proc.send_signal(signal.SIGUSR2)
            await wait_until(lambda: len(got) > len(frames), 10)
            proc.send_signal(signal.SIGUSR1)
            end = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert end.startswith("REPLAY-END ")
            (conn,) = json.loads(end.split(" ", 1)[1])["connections"]
            await wait_until(lambda: len(got) >= conn["frames_sent"], 10)
            await asyncio.sleep(0.3)
            reader.cancel()
        assert len(got) == conn["frames_sent"]  # nothing beyond what was reported
        assert got[:len(frames)] == frames and cache.exists()
        proc.send_signal(signal.SIGTERM)
        report = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert report.startswith("REPORT ")
        (conn,) = json.loads(report.split(" ", 1)[1])["connections"]
        assert conn["frames_sent"] == len(got) and conn["close_code"] is None
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
