"""One peer library, pointed at the local exchange, measured like the engine rows of suite.py.

Runs under bench/.venv-peers (not the project venv): it imports nothing from the project.
The consumer work is the same as the engine rows': count + keep the last event, in the
library's own message callback. A thread samples the counts every 10 ms; the measurement
(first event, warm-up, a fixed window, process CPU time) is the same as suite.Meter's.

Protocol with suite.py (stdin/stdout lines): the worker starts while the previous run is
still finishing, waits for its exchange's port to accept connections, connects and
subscribes (the exchange holds the replay until suite.py releases it); after the window it
prints ``WINDOW``; once the exchange has sent its last frame suite.py sends
``END <frames> <data frames>`` (what the exchange sent this client, replies included and
not); the worker waits until it has received them all (or nothing arrives for
``IDLE_END_S``) and prints ``RESULT <json>``.

Two counts: ``frames``, the market-data frames that reached the library's message entry
point (where a library drops some before the callback, e.g. cryptofeed's book diffs older
than its snapshot, ``events`` is lower), and ``events``, what reached the callback (the
rate). Control replies are not counted in either.

Usage (from suite.py): peer_worker.py --lib NAME [--variant V] --port P --warmup W --seconds S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
from typing import Any

STREAMS = ("btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms")
IDLE_END_S = 1.5
POLL_S = 0.01
FIRST_BY_S = 60.0  # the replay starts once the previous run is over


def wait_port(port: int, timeout: float = 60.0) -> None:
    """Until the exchange (started beside this worker) accepts connections."""
    import socket
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Meter:
    def __init__(self) -> None:
        self.n = 0  # events at the consumer callback
        self.frames = 0  # market-data frames at the library's entry point
        self.last: Any = None
        self.note = ""

    def on_event(self, event: Any) -> None:  # the consumer work: count + keep the last
        self.n += 1
        self.last = event

    def measure(self, warmup: float, seconds: float) -> dict[str, Any]:
        clock, cpu = time.perf_counter, time.process_time
        first_by = clock() + FIRST_BY_S
        while self.n == 0:
            if clock() > first_by:
                raise RuntimeError(f"no message reached the callback within {FIRST_BY_S:.0f} s")
            time.sleep(0.001)
        time.sleep(warmup)
        n0, t0, c0 = self.n, clock(), cpu()
        time.sleep(seconds)
        n1, t1, c1 = self.n, clock(), cpu()
        print("WINDOW", flush=True)
        events, dt, dc = n1 - n0, t1 - t0, c1 - c0
        return {"events": events, "seconds": dt, "per_s": events / dt if dt > 0 else 0.0,
                "cpu_us": dc / max(events, 1) * 1e6, "cpu_share": dc / dt if dt > 0 else 0.0,
                "note": self.note}

    def drain(self, end: list[int]) -> float:
        """Wait for every frame the exchange sent (``end``, once suite.py knows it), or
        until nothing arrived for IDLE_END_S; returns the seconds waited."""
        clock = time.perf_counter
        t0 = last_t = clock()
        last_n = self.frames
        while True:
            time.sleep(POLL_S)
            now = clock()
            if end and self.frames >= end[1]:
                return now - t0
            if self.frames != last_n:
                last_n, last_t = self.frames, now
            elif now - last_t > IDLE_END_S:
                return now - t0


def is_reply(msg: Any) -> bool:
    """A control reply (``{"result":…,"id":…}`` / ``{"error":…}``), as dict or text."""
    if isinstance(msg, dict):
        return "id" in msg and ("result" in msg or "error" in msg)
    if isinstance(msg, bytes):
        msg = msg[:10].decode(errors="replace")
    if isinstance(msg, str):
        return msg.startswith(('{"result"', '{"id"', '{"error"'))
    return False


def in_thread_loop(coro_fn: Any) -> None:
    def run() -> None:
        try:
            asyncio.run(coro_fn())
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            ERRORS.append(f"{type(exc).__name__}: {exc}")
    threading.Thread(target=run, daemon=True).start()


ERRORS: list[str] = []


# ---------------------------------------------------------------------------- peers
# Each starts its library against the port, counting into the meter. VARIANTS says what
# we set differently from the library's default in each variant ("default": nothing but
# the URLs and what an offline start needs).

VARIANTS = {
    "python-binance": {"queue": "max_queue_size=10^6 (default 100: its read loop stops with "
                                "BinanceWebsocketQueueOverflow once 100 messages wait)",
                       "default": "library defaults (max_queue_size=100)"},
    "cryptofeed": {"default": "library defaults (uvloop on, as it installs it; log file in a "
                              "temp dir)"},
    "unicorn-binance-websocket-api": {
        "dict": "output_default='dict' (each frame parsed to a dict, like the engine's "
                "decode; default 'raw_data' hands over the text)",
        "default": "library defaults (output_default='raw_data': the frame's text, not "
                   "parsed)"},
    "binance-sdk-spot": {"default": "library defaults"},
    "ccxt.pro": {"trades": "tradesLimit=10^6 (default 1000: the trade cache keeps 1000)",
                 "default": "library defaults (tradesLimit=1000)"},
}


def python_binance(m: Meter, port: int, variant: str) -> None:
    from binance import AsyncClient, BinanceSocketManager
    from binance.base_client import BaseClient
    BaseClient.API_URL = f"http://127.0.0.1:{port}/api"
    BinanceSocketManager.STREAM_URL = f"ws://127.0.0.1:{port}/"
    m.note = "AsyncClient + BinanceSocketManager.multiplex_socket; " + \
        VARIANTS["python-binance"][variant]

    async def main() -> None:
        client = await AsyncClient.create()
        kw = {"max_queue_size": 1_000_000} if variant == "queue" else {}
        bsm = BinanceSocketManager(client, **kw)
        async with bsm.multiplex_socket(list(STREAMS)) as sock:
            while True:
                msg = await sock.recv()
                if isinstance(msg, dict) and msg.get("e") == "error":
                    ERRORS.append(f"{msg.get('type')}: {msg.get('m')}")
                    continue
                m.frames += 1
                m.on_event(msg)

    in_thread_loop(main)


def cryptofeed(m: Meter, port: int, variant: str) -> None:
    import dataclasses

    from cryptofeed import FeedHandler
    from cryptofeed.connection import WSAsyncConn
    from cryptofeed.defines import L2_BOOK, TICKER, TRADES
    from cryptofeed.exchanges import Binance

    orig = WSAsyncConn.__init__

    def init(self: Any, address: str, conn_id: str, *a: Any, **kw: Any) -> None:
        # 2.4.1 rejects ws:// ("must be a wss address"); check against wss, connect to ws.
        orig(self, address.replace("ws://", "wss://", 1), conn_id, *a, **kw)
        self.address = address

    WSAsyncConn.__init__ = init  # type: ignore[method-assign]
    Binance.websocket_endpoints = [dataclasses.replace(e, address=f"ws://127.0.0.1:{port}")
                                   for e in Binance.websocket_endpoints]
    Binance.rest_endpoints = [dataclasses.replace(e, address=f"http://127.0.0.1:{port}")
                              for e in Binance.rest_endpoints]
    handler = Binance.message_handler

    async def message_handler(self: Any, msg: str, conn: Any, timestamp: float) -> None:
        if not is_reply(msg):
            m.frames += 1
        await handler(self, msg, conn, timestamp)

    Binance.message_handler = message_handler  # type: ignore[method-assign]
    m.note = ("channels TRADES(=aggTrade) TICKER(=bookTicker) L2_BOOK(=depth@100ms, keeps a "
              "book); no @trade channel; " + VARIANTS["cryptofeed"][variant])

    async def cb(obj: Any, receipt_ts: float) -> None:
        m.on_event(obj)

    def run() -> None:
        try:
            log = os.path.join(tempfile.mkdtemp(prefix="bench-cryptofeed-"), "feedhandler.log")
            # the default config, but for where its log file goes (a dict replaces the
            # defaults whole, so both keys are given)
            fh = FeedHandler(config={"uvloop": True, "log": {"filename": log,
                                                             "level": "WARNING"}})
            asyncio.set_event_loop(asyncio.new_event_loop())  # of the policy fh installed
            fh.add_feed(Binance(symbols=["BTC-USDT"], channels=[TRADES, TICKER, L2_BOOK],
                                callbacks={TRADES: cb, TICKER: cb, L2_BOOK: cb}))
            m.note += f"; event loop {type(asyncio.get_event_loop()).__module__}"
            fh.run(install_signal_handlers=False)
        except Exception as exc:  # noqa: BLE001
            ERRORS.append(f"{type(exc).__name__}: {exc}")
    threading.Thread(target=run, daemon=True).start()


def unicorn(m: Meter, port: int, variant: str) -> None:
    from unicorn_binance_websocket_api import BinanceWebSocketApiManager
    kw = {"output_default": "dict"} if variant == "dict" else {}
    ubwa = BinanceWebSocketApiManager(exchange="binance.com", warn_on_update=False,
                                      websocket_base_uri=f"ws://127.0.0.1:{port}/",
                                      restful_base_uri=f"http://127.0.0.1:{port}", **kw)
    m.note = ("create_stream(process_asyncio_queue=...), warn_on_update=False (no GitHub "
              "call offline); " + VARIANTS["unicorn-binance-websocket-api"][variant])

    async def consume(stream_id: Any = None) -> None:
        while True:
            data = await ubwa.get_stream_data_from_asyncio_queue(stream_id)
            if not is_reply(data):
                m.frames += 1
                m.on_event(data)
            ubwa.asyncio_queue_task_done(stream_id)

    ubwa.create_stream(channels=["depth@100ms", "bookTicker", "trade", "aggTrade"],
                       markets=["btcusdt"], process_asyncio_queue=consume)


def binance_sdk_spot(m: Meter, port: int, variant: str) -> None:
    from binance_sdk_spot.spot import ConfigurationRestAPI, ConfigurationWebSocketStreams, Spot
    m.note = ("typed stream handles (pydantic model per message); SUBSCRIBEs 0.5 s apart; "
              + VARIANTS["binance-sdk-spot"][variant])

    def on_message(event: Any) -> None:
        m.frames += 1
        m.on_event(event)

    async def main() -> None:
        client = Spot(config_ws_streams=ConfigurationWebSocketStreams(
            stream_url=f"ws://127.0.0.1:{port}"),
            config_rest_api=ConfigurationRestAPI(base_path=f"http://127.0.0.1:{port}"))
        conn = await client.websocket_streams.create_connection()
        # each handler right after its SUBSCRIBE is sent (the SDK sleeps 0.5 s *before*
        # sending the next one), so no frame arrives before its callback exists
        for subscribe in (lambda: conn.diff_book_depth(symbol="btcusdt", update_speed="100ms"),
                          lambda: conn.book_ticker(symbol="btcusdt"),
                          lambda: conn.trade(symbol="btcusdt"),
                          lambda: conn.agg_trade(symbol="btcusdt")):
            (await subscribe()).on("message", on_message)
        await asyncio.Event().wait()

    in_thread_loop(main)


def ccxt_pro(m: Meter, port: int, variant: str) -> None:
    import ccxt.pro as ccxtpro
    m.note = ("watch_order_book (depth@100ms, keeps a book) + watch_bids_asks (bookTicker) + "
              "watch_trades (@trade: it takes no aggTrade); every frame counted in "
              "handle_message (watch_* return coalesced updates); URL "
              "<port>/stream.binance.com/ws/<n>; " + VARIANTS["ccxt.pro"][variant])

    async def main() -> None:
        options: dict[str, Any] = {"fetchMarkets": {"types": ["spot"]},
                                   "fetchCurrencies": False, "defaultType": "spot"}
        if variant == "trades":
            options["tradesLimit"] = 1_000_000
        ex = ccxtpro.binance({"options": options})
        ex.urls["api"]["public"] = f"http://127.0.0.1:{port}/api/v3"
        ex.urls["api"]["private"] = f"http://127.0.0.1:{port}/api/v3"
        # peer-clients.md: ccxt decides spot vs futures from the URL text, so Binance's
        # host stays in the path; it then opens <url>/<n> and SUBSCRIBEs (the local
        # exchange routes on the path suffix, as real Binance accepts /ws/<n>).
        ex.urls["api"]["ws"]["spot"] = f"ws://127.0.0.1:{port}/stream.binance.com/ws"
        orig = ex.handle_message

        def handle(client: Any, message: Any) -> Any:
            r = orig(client, message)
            if not is_reply(message):
                m.frames += 1
                m.on_event(message)
            return r

        ex.handle_message = handle
        await ex.load_markets()

        async def loop(fn: Any, *a: Any) -> None:
            while True:
                await fn(*a)

        await asyncio.gather(loop(ex.watch_order_book, "BTC/USDT"),
                             loop(ex.watch_bids_asks, ["BTC/USDT"]),
                             loop(ex.watch_trades, "BTC/USDT"))

    in_thread_loop(main)


LIBS = {"python-binance": python_binance, "cryptofeed": cryptofeed,
        "unicorn-binance-websocket-api": unicorn, "binance-sdk-spot": binance_sdk_spot,
        "ccxt.pro": ccxt_pro}


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {}
    for dist in ("python-binance", "cryptofeed", "uvloop", "unicorn-binance-websocket-api",
                 "binance-sdk-spot", "ccxt", "websockets", "aiohttp"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, choices=sorted(LIBS))
    ap.add_argument("--variant", default="default")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=5.0)
    ns = ap.parse_args()
    if ns.variant not in VARIANTS[ns.lib]:
        raise SystemExit(f"{ns.lib}: unknown variant {ns.variant!r}")
    logging.basicConfig(level=getattr(logging, os.environ.get("PEER_LOG", "CRITICAL")))
    end: list[int] = []

    def read_end() -> None:
        line = sys.stdin.readline().split()
        if line and line[0] == "END":
            end.extend(int(v) for v in line[1:3])

    m = Meter()
    try:
        wait_port(ns.port)
        LIBS[ns.lib](m, ns.port, ns.variant)
        result = m.measure(ns.warmup, ns.seconds)
        threading.Thread(target=read_end, daemon=True).start()
        result["drain_s"] = m.drain(end)
        result.update(total=m.n, frames=m.frames, frames_kind="data", versions=versions())
        if ERRORS:
            result["errors"] = ERRORS[:3]
    except Exception as exc:  # noqa: BLE001
        detail = f" ({'; '.join(ERRORS[:2])})" if ERRORS else ""
        result = {"error": f"{type(exc).__name__}: {exc}{detail}"[:400], "frames": m.frames,
                  "total": m.n, "frames_kind": "data"}
    print("RESULT " + json.dumps(result, default=str), flush=True)
    os._exit(0)  # peers keep threads and sockets; the exchange process is stopped anyway


if __name__ == "__main__":
    main()
