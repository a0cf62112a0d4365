"""``binance-live-exchange`` (or ``python -m engine.exchange``): the local exchange until
Ctrl-C/SIGTERM, e.g. ``binance-live-exchange --port 9443 --symbols BTCUSDT --rate 50``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal

from .config import ExchangeConfig
from .server import LocalExchange


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="binance-live-exchange",
                                description="Local Binance-compatible spot exchange "
                                            "(WebSocket streams + REST on one port)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9443)
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", default="50", help="ops/s per symbol, 0 = none, 'max' = unlimited")
    p.add_argument("--recording", default=None,
                   help="hftbacktest .gz/.txt file, or a recording dir with _raw")
    p.add_argument("--speed", type=float, default=1.0, help="replay speed (0 = max)")
    p.add_argument("--replay-wait-all", action="store_true",
                   help="start the replay once every recorded stream has a subscriber")
    p.add_argument("--replay-loops", type=int, default=1,
                   help="replay the recording N times, ids shifted to stay contiguous "
                        "(0 = until --replay-seconds)")
    p.add_argument("--replay-seconds", type=float, default=0.0,
                   help="stop the replay this long after it started (0 = no limit)")
    p.add_argument("--replay-cache", default=None, metavar="FILE",
                   help="looped replays: keep what is built from the recording in FILE "
                        "(a pickle: only a file this exchange wrote), and reuse it when it "
                        "was built from the same file")
    p.add_argument("--replay-hold", action="store_true",
                   help="start the replay only on SIGUSR2 (benchmarks: once the previous "
                        "run is over)")
    p.add_argument("--report", action="store_true",
                   help="on exit, print 'REPORT <json>': counters and frames sent per "
                        "connection (benchmarks check clients against it); with "
                        "--recording also 'REPLAY-END <json>' once the replay is over, "
                        "and SIGUSR1 ends the replay")
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--pong-timeout", type=float, default=60.0)
    p.add_argument("--clock-offset-ms", type=int, default=0)
    p.add_argument("--weight-limit", type=int, default=6000)
    return p.parse_args(argv)


async def _serve(ns: argparse.Namespace) -> None:
    rate = float("inf") if ns.rate.lower() in ("max", "inf") else float(ns.rate)
    cfg = ExchangeConfig(
        symbols=tuple(s.strip().upper() for s in ns.symbols.split(",") if s.strip()),
        seed=ns.seed, rate=rate, recording=ns.recording, replay_speed=ns.speed,
        replay_wait_all=ns.replay_wait_all, replay_loops=ns.replay_loops,
        replay_seconds=ns.replay_seconds, replay_hold=ns.replay_hold,
        replay_cache=ns.replay_cache,
        ping_interval=ns.ping_interval, pong_timeout=ns.pong_timeout,
        clock_offset_ms=ns.clock_offset_ms, weight_limit=ns.weight_limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    ex = LocalExchange(cfg)
    gc.freeze()  # the recording's frames live until exit: no collection needs to scan them
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR2, ex.release_replay)
    await ex.start(ns.host, ns.port)
    print(f"local exchange: ws {ex.ws_url}  rest {ex.rest_url}  symbols {','.join(ex.all_symbols)}",
          flush=True)
    ended: asyncio.Task[None] | None = None
    if ns.report and ns.recording:
        with contextlib.suppress(NotImplementedError):  # the window is over: stop sending
            loop.add_signal_handler(signal.SIGUSR1, ex.stop_replay)
        async def replay_end() -> None:  # benchmarks forward the counts to their client
            await ex.replay_done.wait()
            for _ in range(3000):  # up to 30 s for the writers to hand the rest to the OS
                if not any(c.queue for c in ex.connections):
                    break
                await asyncio.sleep(0.01)
            print("REPLAY-END " + json.dumps(ex.report()), flush=True)
        ended = asyncio.ensure_future(replay_end())
    try:
        await stop.wait()
        if ended is not None:
            ended.cancel()
        if ns.report:  # before stop(): it closes what is still open (1001)
            print("REPORT " + json.dumps(ex.report()), flush=True)
    finally:
        await ex.stop()


def main(argv: list[str] | None = None) -> int:
    asyncio.run(_serve(_args(argv)))
    return 0


def entry() -> None:
    """The ``binance-live-exchange`` console script."""
    raise SystemExit(main())


if __name__ == "__main__":
    entry()
