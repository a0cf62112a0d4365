"""The real ``binance-live --no-ui --demo`` process: status output, -v events, clean exits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT, finish, read_until


def start(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="120")
    return subprocess.Popen([sys.executable, "-m", "tui", "--no-ui", "--demo", "--no-storage",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_headless_demo_prints_status_and_stops_cleanly(sig: signal.Signals) -> None:
    proc = start("--set", "ui.status_interval_s=0.5", "-s", "BTCUSDT,ETHUSDT")
    try:
        out = read_until(proc, "msg/s", 30)
        out += read_until(proc, "btcusdt@trade", 10)
        assert "conn #1" in out and "open" in out
        assert "ethusdt@bookTicker" in out or "ethusdt@trade" in out
        proc.send_signal(sig)
        rest = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "stopped cleanly" in rest
    assert "Traceback" not in out + rest


def test_verbose_prints_typed_events() -> None:
    proc = start("-v", "--set", "ui.status_interval_s=60")
    try:
        out = read_until(proc, "kind=trade", 30)
        out += read_until(proc, "kind=bookTicker", 10)
        proc.send_signal(signal.SIGINT)
        finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    line = next(x for x in out.splitlines() if x.startswith("kind=trade"))
    assert "symbol=BTCUSDT" in line and "price=" in line and "trade_id=" in line
    assert proc.returncode == 0


def test_gaps_line_says_what_backfill_closed() -> None:
    from types import SimpleNamespace

    from engine.gapfill.backfiller import BackfillStats
    from tui.status_text import gaps_line

    assert gaps_line(SimpleNamespace(gaps=0, backfill=None)) == "gaps 0"
    assert gaps_line(SimpleNamespace(gaps=2, backfill=BackfillStats())) == "gaps 2"
    stats = BackfillStats(gaps=3, filled=2, failed=1, rows=1234)
    assert gaps_line(SimpleNamespace(gaps=3, backfill=stats)) == \
        "gaps 3 (backfilled 2, 1,234 rows, failed 1)"
