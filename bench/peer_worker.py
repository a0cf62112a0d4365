"""One peer library, pointed at the local exchange, measured like the engine rows of suite.py.

Runs under bench/.venv-peers (not the project venv): it imports nothing from the project.
The consumer work is the same as the engine rows': count + keep the last event, in the
library's own message callback. A thread samples the count every 10 ms; the measurement
(rec: first → last message; max: 1 s warm-up then a fixed window; process CPU time) is
the same as suite.Meter's.

Usage (from suite.py): peer_worker.py --lib NAME --port P --workload rec|max --seconds S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import threading
import time
from typing import Any

STREAMS = ("btcusdt@trade", "btcusdt@aggTrade", "btcusdt@bookTicker", "btcusdt@depth@100ms")
IDLE_END_S = 2.0
POLL_S = 0.01
TIMEOUT_S = 120.0


class Meter:
    def __init__(self) -> None:
        self.n = 0
        self.last: Any = None
        self.note = ""

    def on_event(self, event: Any) -> None:
        self.n += 1
        self.last = event

    def measure(self, workload: str, seconds: float) -> dict[str, Any]:
        clock, cpu = time.perf_counter, time.process_time
        deadline = clock() + TIMEOUT_S
        first_by = clock() + 20.0
        if workload == "rec":
            while self.n == 0:
                if clock() > first_by:
                    raise RuntimeError("no message reached the callback within 20 s")
                time.sleep(0.001)
            n0, t0, c0 = self.n, clock(), cpu()
            n_last, t_last, c_last = n0, t0, c0
            while True:
                time.sleep(POLL_S)
                now = clock()
                if self.n != n_last:
                    n_last, t_last, c_last = self.n, now, cpu()
                elif now - t_last > IDLE_END_S or now > deadline:
                    break
            events, dt, dc = n_last - n0, t_last - t0, c_last - c0
        else:
            while self.n == 0:
                if clock() > first_by:
                    raise RuntimeError("no message reached the callback within 20 s")
                time.sleep(0.01)
            time.sleep(1.0)
            n0, t0, c0 = self.n, clock(), cpu()
            time.sleep(seconds)
            n1, t1, c1 = self.n, clock(), cpu()
            events, dt, dc = n1 - n0, t1 - t0, c1 - c0
        return {"events": events, "total": self.n, "seconds": dt,
                "per_s": events / dt if dt > 0 else 0.0,
                "cpu_us": dc / max(events, 1) * 1e6, "cpu_share": dc / dt if dt > 0 else 0.0,
                "note": self.note}


def in_thread_loop(coro_fn: Any) -> None:
    def run() -> None:
        try:
            asyncio.run(coro_fn())
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            ERRORS.append(f"{type(exc).__name__}: {exc}")
    threading.Thread(target=run, daemon=True).start()


ERRORS: list[str] = []


# ---------------------------------------------------------------------------- peers


def python_binance(m: Meter, port: int) -> None:
    from binance import AsyncClient, BinanceSocketManager
    from binance.base_client import BaseClient
    BaseClient.API_URL = f"http://127.0.0.1:{port}/api"
    BinanceSocketManager.STREAM_URL = f"ws://127.0.0.1:{port}/"
    m.note = "AsyncClient + BinanceSocketManager.multiplex_socket, max_queue_size=10^6"

    async def main() -> None:
        client = await AsyncClient.create()
        bsm = BinanceSocketManager(client, max_queue_size=1_000_000)
        async with bsm.multiplex_socket(list(STREAMS)) as sock:
            while True:
                m.on_event(await sock.recv())

    in_thread_loop(main)


def cryptofeed(m: Meter, port: int) -> None:
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
    m.note = ("channels TRADES(=aggTrade) TICKER(=bookTicker) L2_BOOK(=depth@100ms, keeps a "
              "book); no @trade channel")

    async def cb(obj: Any, receipt_ts: float) -> None:
        m.on_event(obj)

    def run() -> None:
        try:
            asyncio.set_event_loop(asyncio.new_event_loop())
            fh = FeedHandler(config={"uvloop": False, "log": {"disabled": True}})
            fh.add_feed(Binance(symbols=["BTC-USDT"], channels=[TRADES, TICKER, L2_BOOK],
                                callbacks={TRADES: cb, TICKER: cb, L2_BOOK: cb}))
            fh.run(install_signal_handlers=False)
        except Exception as exc:  # noqa: BLE001
            ERRORS.append(f"{type(exc).__name__}: {exc}")
    threading.Thread(target=run, daemon=True).start()


def unicorn(m: Meter, port: int) -> None:
    from unicorn_binance_websocket_api import BinanceWebSocketApiManager
    ubwa = BinanceWebSocketApiManager(exchange="binance.com", warn_on_update=False,
                                      websocket_base_uri=f"ws://127.0.0.1:{port}/",
                                      restful_base_uri=f"http://127.0.0.1:{port}",
                                      output_default="dict")
    m.note = "create_stream(process_asyncio_queue=...), output dict"

    async def consume(stream_id: Any = None) -> None:
        while True:
            data = await ubwa.get_stream_data_from_asyncio_queue(stream_id)
            m.on_event(data)
            ubwa.asyncio_queue_task_done(stream_id)

    ubwa.create_stream(channels=["depth@100ms", "bookTicker", "trade", "aggTrade"],
                       markets=["btcusdt"], process_asyncio_queue=consume)


def binance_sdk_spot(m: Meter, port: int) -> None:
    from binance_sdk_spot.spot import ConfigurationRestAPI, ConfigurationWebSocketStreams, Spot
    m.note = "typed stream handles (pydantic model per message); SUBSCRIBEs 0.5 s apart"

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
            (await subscribe()).on("message", m.on_event)
        await asyncio.Event().wait()

    in_thread_loop(main)


def ccxt_pro(m: Meter, port: int) -> None:
    import ccxt.pro as ccxtpro
    m.note = ("every frame counted in handle_message (watch_* return coalesced updates); "
              "tradesLimit 10^6; URL <port>/stream.binance.com/ws/<n>")

    async def main() -> None:
        ex = ccxtpro.binance({"options": {"fetchMarkets": {"types": ["spot"]},
                                          "fetchCurrencies": False, "defaultType": "spot",
                                          "tradesLimit": 1_000_000}})
        ex.urls["api"]["public"] = f"http://127.0.0.1:{port}/api/v3"
        ex.urls["api"]["private"] = f"http://127.0.0.1:{port}/api/v3"
        # peer-clients.md: ccxt decides spot vs futures from the URL text, so Binance's
        # host stays in the path; it then opens <url>/<n> and SUBSCRIBEs (the local
        # exchange routes on the path suffix, as real Binance accepts /ws/<n>).
        ex.urls["api"]["ws"]["spot"] = f"ws://127.0.0.1:{port}/stream.binance.com/ws"
        orig = ex.handle_message

        def handle(client: Any, message: Any) -> Any:
            r = orig(client, message)
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, choices=sorted(LIBS))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workload", default="rec")
    ap.add_argument("--seconds", type=float, default=5.0)
    ns = ap.parse_args()
    logging.basicConfig(level=getattr(logging, os.environ.get("PEER_LOG", "CRITICAL")))
    m = Meter()
    try:
        LIBS[ns.lib](m, ns.port)
        result = m.measure(ns.workload, ns.seconds)
        if ERRORS:
            result["errors"] = ERRORS[:3]
    except Exception as exc:  # noqa: BLE001
        detail = f" ({'; '.join(ERRORS[:2])})" if ERRORS else ""
        result = {"error": f"{type(exc).__name__}: {exc}{detail}"[:400]}
    print("RESULT " + json.dumps(result, default=str), flush=True)
    os._exit(0)  # peers keep threads and sockets; the exchange process is stopped anyway


if __name__ == "__main__":
    main()
