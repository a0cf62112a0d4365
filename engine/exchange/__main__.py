"""``binance-live-exchange`` (or ``python -m engine.exchange``): the local exchange until
Ctrl-C/SIGTERM, e.g. ``binance-live-exchange --port 9443 --symbols BTCUSDT --rate 50``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
        replay_wait_all=ns.replay_wait_all,
        ping_interval=ns.ping_interval, pong_timeout=ns.pong_timeout,
        clock_offset_ms=ns.clock_offset_ms, weight_limit=ns.weight_limit)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    ex = LocalExchange(cfg)
    await ex.start(ns.host, ns.port)
    print(f"local exchange: ws {ex.ws_url}  rest {ex.rest_url}  symbols {','.join(ex.all_symbols)}",
          flush=True)
    try:
        await stop.wait()
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
