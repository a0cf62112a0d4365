"""Recorder figures: rows/s per stream type, bytes per row on disk, event-loop stall.

  rows/s          events appended on the loop + flushed + written as finished zstd
                  Parquet by the writer thread, end to end (wall time), per stream type
  bytes/row       finished Parquet size / rows, for real BTCUSDT trades and depth diffs
  loop stall      max and p99 event-loop lag (a 1 ms ticker) while events are recorded
                  at a steady 50k/s with a flush every 0.2 s, against the same run
                  with the recorder off

Usage: python bench/recorder.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Storage  # noqa: E402
from engine.events import (  # noqa: E402
    AggTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    KlineBar,
    MiniTicker,
    PartialDepth,
    Trade,
)
from engine.feed.decode import FrameDecoder  # noqa: E402
from engine.storage.recorder import Recorder  # noqa: E402

REC = ROOT.parent / "shared/realdata/hftbacktest/btcusdt_20240808.gz"


def real_events() -> dict[type, list[Any]]:
    """Trades, bookTickers and depth diffs from the real recording."""
    dec = FrameDecoder()
    out: dict[type, list[Any]] = {Trade: [], BookTicker: [], DepthUpdate: []}
    for line in gzip.decompress(REC.read_bytes()).splitlines():
        ns, _, frame = line.partition(b" ")
        if frame.startswith(b'{"stream"'):
            ev = dec.decode(frame, int(ns), 1)
            out[type(ev)].append(ev)
    return out


def synthetic(typ: type, i: int, ns: int) -> Any:
    if typ is AggTrade:
        return AggTrade(event_time=ns // 10**6, symbol="BTCUSDT", agg_id=i, price=60000.0 + i %
                        100 / 100, qty=0.01, first_trade_id=i, last_trade_id=i,
                        trade_time=ns // 10**6, buyer_is_maker=bool(i & 1), recv_ns=ns)
    if typ is Kline:
        bar = KlineBar(open_time=0, close_time=59999, symbol="BTCUSDT", interval="1m",
                       first_trade_id=1, last_trade_id=i, open=1.0, close=2.0, high=3.0,
                       low=0.5, volume=10.0, trades=i, closed=False, quote_volume=20.0,
                       taker_buy_volume=5.0, taker_buy_quote_volume=10.0)
        return Kline(event_time=ns // 10**6, symbol="BTCUSDT", bar=bar, recv_ns=ns)
    if typ is MiniTicker:
        return MiniTicker(event_time=ns // 10**6, symbol="BTCUSDT", close=1.0, open=1.0,
                          high=1.0, low=1.0, volume=float(i), quote_volume=1.0, recv_ns=ns)
    if typ is PartialDepth:
        levels = [(60000.0 - k / 100, 0.5 + k) for k in range(20)]
        return PartialDepth(last_update_id=i, bids=levels, asks=levels, symbol="BTCUSDT",
                            recv_ns=ns)
    raise ValueError(typ)


def workload(typ: type, real: dict[type, list[Any]], n: int) -> list[Any]:
    if typ in real:
        base = real[typ]
        return [base[i % len(base)] for i in range(n)]
    t0 = time.time_ns()
    return [synthetic(typ, i, t0 + i * 1000) for i in range(n)]


async def rows_per_second(typ: type, events: list[Any], tmp: Path) -> tuple[float, float]:
    cfg = dataclasses.replace(Storage(directory=str(tmp / typ.kind)), flush_interval_s=300)
    rec = Recorder(cfg)
    await rec.start()
    t0 = time.perf_counter()
    for i, ev in enumerate(events):
        rec.on_event(ev)
        if i % 50_000 == 49_999:
            rec.flush()
    await rec.stop()  # everything finished on disk
    elapsed = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (tmp / typ.kind).rglob("*.parquet"))
    return len(events) / elapsed, size / len(events)


async def loop_lag(record: bool, events: list[Any], tmp: Path, seconds: float = 4.0
                   ) -> tuple[float, float]:
    """Max and p99 lag (ms) of a 1 ms ticker while events arrive at 50k/s."""
    cfg = dataclasses.replace(Storage(directory=str(tmp / f"lag-{record}")),
                              flush_interval_s=0.2)
    rec = Recorder(cfg)
    if record:
        await rec.start()
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(0.001)
            lags.append((loop.time() - t - 0.001) * 1000)

    task = asyncio.create_task(ticker())
    loop = asyncio.get_running_loop()
    start = loop.time()
    i = 0
    while loop.time() - start < seconds:
        for _ in range(500):  # 500 events every 10 ms = 50k/s
            rec.on_event(events[i % len(events)])
            i += 1
        await asyncio.sleep(0.01)
    stop.set()
    await task
    if record:
        await rec.stop()
    lags.sort()
    return lags[-1], lags[int(len(lags) * 0.99)]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--json", type=Path, default=ROOT / "bench/results/recorder.json")
    args = ap.parse_args()
    if not REC.exists():
        raise SystemExit(f"needs the real recording at {REC}")
    real = real_events()
    tmp = Path(tempfile.mkdtemp(prefix="bl-bench-"))
    results: dict[str, Any] = {"rows_per_s": {}, "bytes_per_row": {}}
    try:
        print(f"\nrecorder, {args.rows:,} rows per stream type (append → flush → finished "
              "zstd Parquet)\n")
        print(f"{'stream type':14} {'rows/s':>12}   bytes/row on disk")
        for typ in (Trade, AggTrade, BookTicker, DepthUpdate, PartialDepth, Kline,
                    MiniTicker):
            events = workload(typ, real, args.rows)
            rate, _ = await rows_per_second(typ, events, tmp / "rate")
            results["rows_per_s"][typ.kind] = rate
            size = "(synthetic data)"
            if typ in real:  # size on the real rows once, not the repeated workload
                _, per_row = await rows_per_second(typ, real[typ], tmp / "size")
                results["bytes_per_row"][typ.kind] = per_row
                size = f"{per_row:.1f}  ({len(real[typ]):,} real BTCUSDT rows)"
            print(f"{typ.kind:14} {rate:>12,.0f}   {size}")
        trades = real[Trade]
        base = await loop_lag(False, trades, tmp)
        with_rec = await loop_lag(True, trades, tmp)
        results["loop_lag_ms"] = {"recorder_off": base, "recorder_on": with_rec}
        print("\nevent-loop lag at 50k events/s, flush every 0.2 s (1 ms ticker)")
        print(f"{'':14} {'max ms':>10} {'p99 ms':>10}")
        print(f"{'recorder off':14} {base[0]:>10.2f} {base[1]:>10.2f}")
        print(f"{'recorder on':14} {with_rec[0]:>10.2f} {with_rec[1]:>10.2f}")
        print(f"{'ratio on/off':14} {with_rec[0] / max(base[0], 1e-3):>10.2f} "
              f"{with_rec[1] / max(base[1], 1e-3):>10.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {args.json}")


if __name__ == "__main__":
    asyncio.run(main())
