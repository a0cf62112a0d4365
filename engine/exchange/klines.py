"""Kline interval arithmetic and aggregation of 1s/1m base candles.

Why: updating 32 (interval x timezone) candles per trade is too slow at high
rates, so the market keeps only 1s and 1m base candles; every other interval is
aggregated from 1m candles on demand (streams every 2 s, REST per request).

A candle is a list ``[t, o, h, l, c, v, n, f, L, q, V, Q]``: prices in ticks,
``v``/``V`` in lot steps, ``q``/``Q`` as sums of ticks*steps, ``f``/``L`` trade ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

INTERVALS: dict[str, int] = {
    "1s": SECOND, "1m": MINUTE, "3m": 3 * MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE,
    "30m": 30 * MINUTE, "1h": HOUR, "2h": 2 * HOUR, "4h": 4 * HOUR, "6h": 6 * HOUR,
    "8h": 8 * HOUR, "12h": 12 * HOUR, "1d": DAY, "3d": 3 * DAY, "1w": 7 * DAY, "1M": 31 * DAY,
}
TZ8 = 8 * HOUR
_MONDAY = 4 * DAY  # 1970-01-05 was the first Monday after the epoch

T, O, H, L, C, V, N, F, LAST, Q, TV, TQ = range(12)  # noqa: E741


def bucket_start(interval: str, t_ms: int, tz_ms: int = 0) -> int:
    """Open time (UTC ms) of the `interval` candle holding `t_ms`, buckets aligned in UTC+tz."""
    local = t_ms + tz_ms
    if interval == "1M":
        d = datetime.fromtimestamp(local / 1000, UTC)
        start = datetime(d.year, d.month, 1, tzinfo=UTC)
        return int(start.timestamp()) * 1000 - tz_ms
    size = INTERVALS[interval]
    if interval == "1w":
        return (local - _MONDAY) // size * size + _MONDAY - tz_ms
    return local // size * size - tz_ms


def bucket_next(interval: str, start: int, tz_ms: int = 0) -> int:
    """Open time of the candle after the one opening at `start`."""
    if interval == "1M":
        d = datetime.fromtimestamp((start + tz_ms) / 1000, UTC)
        y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        return int(datetime(y, m, 1, tzinfo=UTC).timestamp()) * 1000 - tz_ms
    return start + INTERVALS[interval]


def new_candle(t: int, price: int) -> list[int]:
    """An empty candle (no trades): Binance reports f = L = -1 and o=h=l=c=previous close."""
    return [t, price, price, price, price, 0, 0, -1, -1, 0, 0, 0]


def add_trade(k: list[int], tid: int, price: int, qty: int, buyer_maker: bool) -> None:
    """Fold one trade into candle `k` in place."""
    if k[N] == 0:
        k[O] = k[H] = k[L] = price
        k[F] = tid
    elif price > k[H]:
        k[H] = price
    elif price < k[L]:
        k[L] = price
    k[C] = price
    k[V] += qty
    k[N] += 1
    k[LAST] = tid
    k[Q] += price * qty
    if not buyer_maker:  # the taker bought
        k[TV] += qty
        k[TQ] += price * qty


def merge(acc: list[int], k: list[int]) -> None:
    """Fold base candle `k` (later in time) into aggregate `acc` in place."""
    if k[N] == 0:
        return
    if acc[N] == 0:
        acc[O], acc[H], acc[L], acc[F] = k[O], k[H], k[L], k[F]
    else:
        acc[H] = max(acc[H], k[H])
        acc[L] = min(acc[L], k[L])
    acc[C] = k[C]
    acc[LAST] = k[LAST]
    acc[V] += k[V]
    acc[N] += k[N]
    acc[Q] += k[Q]
    acc[TV] += k[TV]
    acc[TQ] += k[TQ]


def aggregate(interval: str, tz_ms: int, base: Iterable[list[int]], prev_close: int,
              now_ms: int) -> list[list[int]]:
    """Contiguous candles of `interval` built from time-ordered base candles.

    Empty buckets between the first base candle and `now_ms` are filled with
    zero-volume candles at the previous close, as Binance does for a live symbol.
    """
    out: list[list[int]] = []
    cur: list[int] | None = None
    nxt = 0
    close = prev_close
    for k in base:
        while cur is None or k[T] >= nxt:
            if cur is not None:
                close = cur[C]
                out.append(cur)
                start = nxt
            else:
                start = bucket_start(interval, k[T], tz_ms)
            cur = new_candle(start, close)
            nxt = bucket_next(interval, start, tz_ms)
        merge(cur, k)
    if cur is None:
        return out
    while True:
        out.append(cur)
        if now_ms < nxt:
            break
        start, close = nxt, cur[C]
        cur = new_candle(start, close)
        nxt = bucket_next(interval, start, tz_ms)
    return out
