"""The real ``binance-live --no-ui`` process: status output, -v events, clean exits.

The output is parsed whole, line by line: every line must be one the program is meant to
print, and the numbers in it must be the right ones (not just present).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
from typing import Any

import pytest

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import ROOT, finish, read_until, wait_until

WIDTH = 120  # the summary line is longer: it must wrap, not be cropped
# the default streams of two symbols, in the table's (sorted) order
STREAMS = [f"{s}@{k}" for s in ("btcusdt", "ethusdt")
           for k in ("aggTrade", "bookTicker", "depth20@100ms", "kline_1m", "trade")]
NO_EVENT_TIME = ("@bookTicker", "@depth20@100ms")  # latency "n/a" (spot has no E)

DEMO = re.compile(r"demo: local exchange at (ws://127\.0\.0\.1:\d+)")
BANNER = re.compile(r"binance-live: BTCUSDT, ETHUSDT · 10 streams · (ws://127\.0\.0\.1:\d+)"
                    r" · Ctrl-C to stop")
HEADER = re.compile(r"stream / connection +state +msg/s +total +last +p50/p99 ms")
CONN = re.compile(r"conn #(\d+) \(shard (\d+), (\d+)/(\d+) streams\) +(\w+)"
                  r"(?: +(\d+\.\d)s)? *")
ROW = re.compile(r"  (\S+) +(on) +([\d,]+\.\d) +([\d,]+) +(-|\d+\.\ds) +"
                 r"(-|n/a|(-?\d+(?:\.\d)?)/(-?\d+(?:\.\d)?))")
MS = r"\d+(?:\.\d)?"
SUMMARY = re.compile(
    r"up ([\d,]+)s · ([\d,]+) msg/s · reconnects (\d+) · bad frames (\d+) · "
    r"consumer drops (\d+) errors (\d+) · clock offset (?:n/a \(syncing\)|"
    rf"([+-]{MS}) ms \(rtt ({MS}) ms\)) · REST weight ([\d,]+)/([\d,]+) · gaps (\d+) · "
    r"REC off")


def start(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS=str(WIDTH))
    return subprocess.Popen([sys.executable, "-m", "tui", "--no-ui", "--no-storage", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _int(text: str) -> int:
    return int(text.replace(",", ""))


def parse_status(out: str) -> list[dict[str, Any]]:
    """Every status block of a headless run, fully parsed; fails on any other line."""
    lines = out.splitlines()
    demo, banner = DEMO.fullmatch(lines[0]), BANNER.fullmatch(lines[1])
    assert demo and banner and banner[1] == demo[1], lines[:2]  # the same exchange
    assert lines[-1] == "stopped cleanly", lines[-3:]
    blocks: list[dict[str, Any]] = []
    i, body = 2, lines[:-1]
    while i < len(body):
        assert HEADER.fullmatch(body[i]), f"line {i}: {body[i]!r}"
        i += 1
        conn = CONN.fullmatch(body[i])
        assert conn, f"line {i}: {body[i]!r}"
        i += 1
        rows = []
        while i < len(body) and (row := ROW.fullmatch(body[i])):
            rows.append(row)
            i += 1
        summary = ""  # wrapped at WIDTH columns: the continuation lines are joined back
        while i < len(body) and not HEADER.fullmatch(body[i]):
            assert len(body[i]) <= WIDTH, body[i]
            summary += body[i]
            i += 1
        m = SUMMARY.fullmatch(summary)  # a block is printed whole: never cut short
        assert m, f"summary: {summary!r}"
        blocks.append({"conn": conn.groups(), "rows": rows, "summary": m})
    return blocks


def check_block(block: dict[str, Any]) -> None:
    """One status block: its lines agree with each other and with a healthy demo feed."""
    conn_id, shard, subscribed, streams, state, _ = block["conn"]
    rows, m = block["rows"], block["summary"]
    assert [r[1] for r in rows] == STREAMS
    assert (conn_id, shard, subscribed, streams) == ("1", "0", "10", "10")
    assert state in ("open", "connecting")
    for r in rows:
        name, total, latency, p50, p99 = r[1], _int(r[4]), r[6], r[7], r[8]
        if total == 0:
            assert (r[3], r[5], latency) == ("0.0", "-", "-"), r[0]
        elif name.endswith(NO_EVENT_TIME):
            assert latency == "n/a", r[0]
        else:
            assert p50 is not None and float(p50) <= float(p99), r[0]
    # the summary's msg/s is the sum of the rows' (each rounded to 0.1, the sum to 1)
    rates = sum(float(r[3].replace(",", "")) for r in rows)
    assert abs(_int(m[2]) - rates) <= 0.5 + 0.05 * len(rows), (m[2], rates)
    assert m.group(3, 4, 5, 6) == ("0", "0", "0", "0")  # reconnects, bad frames, drops, errors
    if m[7] is not None:  # same clock on both ends: the offset is within half the rtt
        assert abs(float(m[7])) <= float(m[8]) / 2 + 1.5, (m[7], m[8])
    assert _int(m[10]) == 6000 and 0 < _int(m[9]) <= 6000
    assert m[11] == "0"  # gaps


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_headless_demo_prints_status_and_stops_cleanly(sig: signal.Signals) -> None:
    proc = start("--demo", "--set", "ui.status_interval_s=0.5", "-s", "BTCUSDT,ETHUSDT")
    try:
        out = read_until(proc, "msg/s", 30)
        while out.count("REC off") < 3:  # three complete blocks
            out += read_until(proc, "REC off", 10)
        proc.send_signal(sig)
        out += finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-2000:]
    blocks = parse_status(out)
    assert len(blocks) >= 3, out[-2000:]
    for block in blocks:
        check_block(block)
    assert blocks[-1]["conn"][4] == "open"
    ups = [_int(b["summary"][1]) for b in blocks]
    assert ups == sorted(ups)
    for a, b in itertools.pairwise(blocks):  # totals only grow
        assert all(_int(x[4]) <= _int(y[4]) for x, y in zip(a["rows"], b["rows"], strict=True))
    last = {r[1]: _int(r[4]) for r in blocks[-1]["rows"]}
    assert all(last[f"{s}@{k}"] > 0 for s in ("btcusdt", "ethusdt")
               for k in ("bookTicker", "depth20@100ms")), last


def expected_line(stream: str, d: dict[str, Any]) -> str:
    """The -v line for one sent frame, built by hand from the wire format."""
    kind = stream.split("@", 1)[1]
    if kind == "trade":
        return (f"kind=trade event_time={d['E']} symbol={d['s']} trade_id={d['t']} "
                f"price={float(d['p'])} qty={float(d['q'])} trade_time={d['T']} "
                f"buyer_is_maker={d['m']} best_match={d['M']} buyer_order_id={d.get('b')} "
                f"seller_order_id={d.get('a')} backfilled=False")
    if kind == "aggTrade":
        return (f"kind=aggTrade event_time={d['E']} symbol={d['s']} agg_id={d['a']} "
                f"price={float(d['p'])} qty={float(d['q'])} first_trade_id={d['f']} "
                f"last_trade_id={d['l']} trade_time={d['T']} buyer_is_maker={d['m']} "
                f"best_match={d['M']} backfilled=False")
    if kind == "bookTicker":
        return (f"kind=bookTicker update_id={d['u']} symbol={d['s']} "
                f"bid_price={float(d['b'])} bid_qty={float(d['B'])} "
                f"ask_price={float(d['a'])} ask_qty={float(d['A'])} "
                f"event_time={d.get('E', 0)} transaction_time={d.get('T', 0)}")
    if kind.startswith("depth"):
        def side(levels: list[list[str]]) -> str:
            return str([(float(p), float(q)) for p, q in levels])
        return (f"kind=depthPartial last_update_id={d['lastUpdateId']} bids={side(d['bids'])} "
                f"asks={side(d['asks'])} symbol={stream.split('@')[0].upper()}")
    assert kind.startswith("kline"), stream
    k = d["k"]
    bar = {"open_time": k["t"], "close_time": k["T"], "symbol": k["s"], "interval": k["i"],
           "first_trade_id": k["f"], "last_trade_id": k["L"], "open": float(k["o"]),
           "close": float(k["c"]), "high": float(k["h"]), "low": float(k["l"]),
           "volume": float(k["v"]), "trades": k["n"], "closed": k["x"],
           "quote_volume": float(k["q"]), "taker_buy_volume": float(k["V"]),
           "taker_buy_quote_volume": float(k["Q"])}
    return f"kind=kline event_time={d['E']} symbol={d['s']} bar={bar} backfilled=False"


async def test_verbose_prints_every_event_exactly_as_sent() -> None:
    """-v against a local exchange: the event lines are, one for one and in order, the
    frames the exchange sent (its sent log, rendered by hand), every field right."""
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=200, seed=5, record_sent=True)
    async with LocalExchange(cfg) as ex:
        proc = start("-v", "--ws-url", ex.ws_url, "--rest-url", ex.rest_url,
                     "--set", "ui.status_interval_s=60")
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        out = b""

        def read() -> bytes:
            nonlocal out
            try:
                while chunk := os.read(fd, 65536):
                    out += chunk
            except BlockingIOError:
                pass
            return out

        try:
            await wait_until(lambda: len(ex.connections) == 1 and ex.stats.frames_sent > 300,
                             30, "frames sent")
            ex.faults.stall(True)  # freeze what was sent
            sent = [json.loads(text) for _, text in ex.sent_log]
            data = [f for f in sent if "stream" in f]
            await wait_until(lambda: read().count(b"\nkind=") >= len(data), 20,
                             f"{len(data)} event lines")
            proc.send_signal(signal.SIGINT)
            os.set_blocking(fd, True)
            out = read() + finish(proc).encode()
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    lines = out.decode().splitlines()
    assert lines[0] == (f"binance-live: BTCUSDT · 5 streams · {ex.ws_url} · Ctrl-C to stop")
    assert lines[-1] == "stopped cleanly"
    events = lines[1:-1]
    kinds = {f["stream"].split("@", 1)[1] for f in data}
    assert kinds == {"trade", "aggTrade", "bookTicker", "depth20@100ms", "kline_1m"}
    assert events == [expected_line(f["stream"], f["data"]) for f in data]


def test_gaps_line_says_what_backfill_closed() -> None:
    from types import SimpleNamespace

    from engine.gapfill.backfiller import BackfillStats
    from tui.status_text import gaps_line

    assert gaps_line(SimpleNamespace(gaps=0, backfill=None)) == "gaps 0"
    assert gaps_line(SimpleNamespace(gaps=2, backfill=BackfillStats())) == "gaps 2"
    stats = BackfillStats(gaps=3, filled=2, failed=1, rows=1234)
    assert gaps_line(SimpleNamespace(gaps=3, backfill=stats)) == \
        "gaps 3 (backfilled 2, 1,234 rows, failed 1)"
