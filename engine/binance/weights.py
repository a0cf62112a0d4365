"""Binance REST request weights (spot, current since 2025-03-10) and the default budget.

One table, used by the budget before every call and by the config validator to reject a
snapshot-polling setup that could never fit (Binance spot API docs: "Request weights").
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_WEIGHT_LIMIT = 6000  # REQUEST_WEIGHT per window, per IP
DEFAULT_WINDOW_S = 60.0  # fixed windows on wall-clock minute boundaries
POLL_SHARE = 0.8  # periodic polling may plan for this share; the rest is for resyncs/backfill

# limit upper bound -> weight
_DEPTH = ((100, 5), (500, 25), (1000, 50), (5000, 250))

_FIXED: dict[str, int] = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
    "/api/v3/uiKlines": 2,
    "/api/v3/aggTrades": 4,
    "/api/v3/trades": 25,
    "/api/v3/historicalTrades": 25,
    "/api/v3/avgPrice": 2,
}


def depth_weight(limit: int) -> int:
    """Weight of ``/api/v3/depth``; limits above 5000 are truncated by Binance."""
    for bound, weight in _DEPTH:
        if limit <= bound:
            return weight
    return _DEPTH[-1][1]


def request_weight(path: str, params: Mapping[str, object] | None = None) -> int:
    params = params or {}
    if path == "/api/v3/depth":
        return depth_weight(int(str(params.get("limit", 100))))
    if path in ("/api/v3/ticker/bookTicker", "/api/v3/ticker/price"):
        return 2 if "symbol" in params else 4
    if path == "/api/v3/ticker/24hr":
        return 2 if "symbol" in params else 80
    return _FIXED.get(path, 1)


def polling_weight_per_minute(symbols: int, limit: int, interval_s: float) -> float:
    return symbols * depth_weight(limit) * 60.0 / interval_s


def smallest_polling_interval(symbols: int, limit: int,
                              budget: int = DEFAULT_WEIGHT_LIMIT) -> float:
    """The shortest period at which polling stays within its share of the budget."""
    return symbols * depth_weight(limit) * 60.0 / (budget * POLL_SHARE)
