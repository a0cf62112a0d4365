"""JSON payload builders with Binance's exact spot key sets and order.

Why hand-built strings: an event is encoded once and fanned out to many
connections, and f-strings are several times faster than a generic encoder.
`mul` is 1 for millisecond connections and 1000 for ``timeUnit=MICROSECOND``.
"""

from __future__ import annotations

import json

from . import klines as kl
from .fixed import fmt8, fmt_ratio
from .market import Market


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def trade(m: Market, ev: tuple, mul: int) -> str:
    tid, price, qty, t, bm = ev
    return (f'{{"e":"trade","E":{t * mul},"s":"{m.symbol}","t":{tid},'
            f'"p":"{m.price_str(price)}","q":"{m.qty_str(qty)}","T":{t * mul},'
            f'"m":{_b(bm)},"M":true}}')


def agg_trade(m: Market, ev: tuple, mul: int) -> str:
    aid, price, qty, first, last, t, bm = ev
    return (f'{{"e":"aggTrade","E":{t * mul},"s":"{m.symbol}","a":{aid},'
            f'"p":"{m.price_str(price)}","q":"{m.qty_str(qty)}","f":{first},"l":{last},'
            f'"T":{t * mul},"m":{_b(bm)},"M":true}}')


def book_ticker(m: Market, ev: tuple, mul: int) -> str:
    u, bp, bq, ap, aq = ev
    bps = m.price_str(bp) if bp is not None else "0.00000000"
    aps = m.price_str(ap) if ap is not None else "0.00000000"
    return (f'{{"u":{u},"s":"{m.symbol}","b":"{bps}","B":"{m.qty_str(bq)}",'
            f'"a":"{aps}","A":"{m.qty_str(aq)}"}}')


def _levels(rows: list[list[str]]) -> str:
    return json.dumps(rows, separators=(",", ":"))


def depth_update(m: Market, diff: tuple, now_ms: int, mul: int) -> str:
    first, last, bids, asks = diff
    return (f'{{"e":"depthUpdate","E":{now_ms * mul},"s":"{m.symbol}","U":{first},"u":{last},'
            f'"b":{_levels(bids)},"a":{_levels(asks)}}}')


def partial_depth(snap: tuple, mul: int) -> str:
    uid, bids, asks = snap
    return f'{{"lastUpdateId":{uid},"bids":{_levels(bids)},"asks":{_levels(asks)}}}'


def kline(m: Market, interval: str, k: list[int], closed: bool, now_ms: int, tz_ms: int,
          mul: int) -> str:
    end = kl.bucket_next(interval, k[kl.T], tz_ms) - 1
    return (f'{{"e":"kline","E":{now_ms * mul},"s":"{m.symbol}","k":{{'
            f'"t":{k[kl.T] * mul},"T":{end * mul},"s":"{m.symbol}","i":"{interval}",'
            f'"f":{k[kl.F]},"L":{k[kl.LAST]},"o":"{m.price_str(k[kl.O])}",'
            f'"c":"{m.price_str(k[kl.C])}","h":"{m.price_str(k[kl.H])}",'
            f'"l":"{m.price_str(k[kl.L])}","v":"{m.qty_str(k[kl.V])}","n":{k[kl.N]},'
            f'"x":{_b(closed)},"q":"{m.quote_str(k[kl.Q])}","V":"{m.qty_str(k[kl.TV])}",'
            f'"Q":"{m.quote_str(k[kl.TQ])}","B":"0"}}}}')


def mini_ticker(m: Market, st: dict, now_ms: int, mul: int) -> str:
    return (f'{{"e":"24hrMiniTicker","E":{now_ms * mul},"s":"{m.symbol}",'
            f'"c":"{m.price_str(st["c"])}","o":"{m.price_str(st["o"])}",'
            f'"h":"{m.price_str(st["h"])}","l":"{m.price_str(st["l"])}",'
            f'"v":"{m.qty_str(st["v"])}","q":"{m.quote_str(st["q"])}"}}')


def ticker(m: Market, st: dict, now_ms: int, mul: int) -> str:
    bp, bq, ap, aq = m.top()
    change = (st["c"] - st["o"]) * m.tick_units
    pct = fmt_ratio((st["c"] - st["o"]) * 100, st["o"], 3) if st["o"] else "0.000"
    # weighted average price = quote volume / base volume, in 1e-8 units
    w_units = (st["q"] * m.tick_units // st["v"]) if st["v"] else st["c"] * m.tick_units
    return (f'{{"e":"24hrTicker","E":{now_ms * mul},"s":"{m.symbol}","p":"{fmt8(change)}",'
            f'"P":"{pct}","w":"{fmt8(w_units)}","x":"{m.price_str(st["x"])}",'
            f'"c":"{m.price_str(st["c"])}","Q":"{m.qty_str(st["Q"])}",'
            f'"b":"{m.price_str(bp) if bp is not None else "0.00000000"}","B":"{m.qty_str(bq)}",'
            f'"a":"{m.price_str(ap) if ap is not None else "0.00000000"}","A":"{m.qty_str(aq)}",'
            f'"o":"{m.price_str(st["o"])}","h":"{m.price_str(st["h"])}",'
            f'"l":"{m.price_str(st["l"])}","v":"{m.qty_str(st["v"])}",'
            f'"q":"{m.quote_str(st["q"])}","O":{st["O"] * mul},"C":{st["C"] * mul},'
            f'"F":{st["F"]},"L":{st["L"]},"n":{st["n"]}}}')


def server_shutdown(now_ms: int, mul: int = 1) -> str:
    return f'{{"e":"serverShutdown","E":{now_ms * mul}}}'


def wrap(stream: str, payload: str) -> str:
    """The combined-stream envelope."""
    return f'{{"stream":"{stream}","data":{payload}}}'
