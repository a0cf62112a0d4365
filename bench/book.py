"""LocalBook figures: µs per diff applied, snapshot load time, top-N extraction cost.

  diff apply      every diff of the real BTCUSDT 2024 recording (mean ~36 levels) applied
                  to a book built from its snapshot, repeated; µs per diff and per level
  snapshot load   a real 5000-level REST snapshot (cryptofeed FTMUSDT, 2373 x 5000) and a
                  synthetic 5000 x 5000 one, decoded event -> LocalBook.on_snapshot
  top-20          LocalBook.top(20) on the FTMUSDT book; also mid/spread/imbalance(20)

Usage: python bench/book.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.binance.rest_rows import decode_depth  # noqa: E402
from engine.book.local_book import LocalBook  # noqa: E402
from engine.events import DepthUpdate, OrderBookSnapshot  # noqa: E402
from engine.feed.decode import FrameDecoder  # noqa: E402

REALDATA = ROOT.parent / "shared/realdata"
HFT = REALDATA / "hftbacktest/btcusdt_20240808.gz"
CRYPTOFEED = REALDATA / "cryptofeed/rev-4fe02974/BINANCE.http.0.0"


def recording() -> tuple[OrderBookSnapshot, list[DepthUpdate]]:
    dec = FrameDecoder()
    snap = None
    diffs: list[DepthUpdate] = []
    for line in gzip.decompress(HFT.read_bytes()).splitlines():
        ns, _, frame = line.partition(b" ")
        if frame.startswith(b'{"lastUpdateId"'):
            snap = decode_depth(frame, "BTCUSDT", 1000, int(ns))
        elif b"@depth" in frame[:40]:
            ev = dec.decode(frame, int(ns), 1)
            if isinstance(ev, DepthUpdate):
                diffs.append(ev)
    assert snap is not None
    return snap, [d for d in diffs if d.final_update_id > snap.last_update_id]


def ftm_snapshot() -> bytes:
    for line in CRYPTOFEED.read_bytes().splitlines():
        if b"symbol=FTMUSDT" in line:
            return line.split(b": ", 1)[1]
    raise SystemExit("FTMUSDT snapshot not found")


def synthetic_snapshot(n: int = 5000) -> bytes:
    bids = [[f"{60000 - i * 0.01:.8f}", f"{0.001 * (i % 97 + 1):.8f}"] for i in range(n)]
    asks = [[f"{60000.01 + i * 0.01:.8f}", f"{0.001 * (i % 89 + 1):.8f}"] for i in range(n)]
    return json.dumps({"lastUpdateId": 1, "bids": bids, "asks": asks}).encode()


def bench_diffs(repeat: int) -> dict[str, Any]:
    snap, diffs = recording()
    levels = sum(len(d.bids) + len(d.asks) for d in diffs)
    # the book drops itself when BTC leaves the 1000-level range; keep it alive here
    best = float("inf")
    for _ in range(repeat):
        book = LocalBook("BTCUSDT", resync_when_exhausted=False)
        book.on_snapshot(snap)
        on_diff = book.on_diff
        t0 = time.perf_counter_ns()
        for d in diffs:
            on_diff(d)
        best = min(best, time.perf_counter_ns() - t0)
        assert book.applied == len(diffs) and book.synced
    return {"diffs": len(diffs), "mean_levels": levels / len(diffs),
            "us_per_diff": best / 1e3 / len(diffs), "ns_per_level": best / levels}


def bench_snapshot(body: bytes, repeat: int) -> dict[str, Any]:
    dec_best = load_best = float("inf")
    snap = None
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        snap = decode_depth(body, "X", 5000, 0)
        t1 = time.perf_counter_ns()
        LocalBook("X").on_snapshot(snap)
        t2 = time.perf_counter_ns()
        dec_best = min(dec_best, t1 - t0)
        load_best = min(load_best, t2 - t1)
    assert snap is not None
    return {"levels": f"{len(snap.bids)}x{len(snap.asks)}", "decode_ms": dec_best / 1e6,
            "load_ms": load_best / 1e6}


def bench_views(body: bytes, n: int = 20, loops: int = 20_000) -> dict[str, Any]:
    book = LocalBook("X")
    book.on_snapshot(decode_depth(body, "X", 5000, 0))
    t0 = time.perf_counter_ns()
    for _ in range(loops):
        book.top(n)
    t1 = time.perf_counter_ns()
    for _ in range(loops):
        book.mid()
        book.spread_bps()
    t2 = time.perf_counter_ns()
    for _ in range(loops):
        book.imbalance(n)
    t3 = time.perf_counter_ns()
    return {"top20_us": (t1 - t0) / 1e3 / loops, "mid_spread_us": (t2 - t1) / 1e3 / loops,
            "imbalance20_us": (t3 - t2) / 1e3 / loops}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    ftm = ftm_snapshot()
    out = {
        "diff_apply": bench_diffs(args.repeat),
        "snapshot_load": {"FTMUSDT_real": bench_snapshot(ftm, args.repeat),
                          "synthetic_5000": bench_snapshot(synthetic_snapshot(), args.repeat)},
        "views": bench_views(ftm),
    }
    d = out["diff_apply"]
    print(f"{'measure':42} {'value':>12}")
    print(f"{'diff apply (real BTCUSDT, µs/diff)':42} {d['us_per_diff']:12.2f}")
    print(f"{'  per level (ns), mean levels/diff':42} {d['ns_per_level']:12.0f}"
          f"  ({d['mean_levels']:.1f} levels, {d['diffs']} diffs)")
    for name, s in out["snapshot_load"].items():
        print(f"{'snapshot ' + name + ' ' + s['levels'] + ' load (ms)':42} {s['load_ms']:12.2f}"
              f"  (+ decode {s['decode_ms']:.2f} ms)")
    v = out["views"]
    print(f"{'top(20) on a 5000-level book (µs)':42} {v['top20_us']:12.2f}")
    print(f"{'mid + spread_bps (µs)':42} {v['mid_spread_us']:12.2f}")
    print(f"{'imbalance(20) (µs)':42} {v['imbalance20_us']:12.2f}")
    res = ROOT / "bench/results/book.json"
    res.parent.mkdir(parents=True, exist_ok=True)
    res.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {res.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
