"""REST market-data endpoints (/api/v3/...) with Binance weights and error bodies."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote

import msgspec
from aiohttp import web

from . import klines as kl
from .config import ExchangeConfig
from .fixed import fmt8, fmt_ratio
from .market import Market
from .ratelimit import WeightLimiter
from .stats import Stats


class RestFaults(Protocol):
    """The REST fault hooks (``faults.Faults``)."""

    rest_delay_s: float

    def rest_reply(self, route: str) -> web.Response | None: ...

    def note_rest_status(self, status: int, retry_after: float = 0.0) -> None: ...


class _Exchange(Protocol):
    """What the REST endpoints read of the exchange (``server.LocalExchange``)."""

    config: ExchangeConfig
    stats: Stats
    limiter: WeightLimiter
    markets: dict[str, Market]
    all_symbols: tuple[str, ...]

    @property
    def faults(self) -> RestFaults: ...

    def now_ms(self) -> int: ...

    def replay_snapshot(self, symbol: str) -> str | None: ...

    def replay_book_ticker(self, symbol: str) -> dict[str, Any] | None: ...

_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_INT_RE = re.compile(r"^-?[0-9]{1,20}$")
_TZ_RE = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")
_enc = msgspec.json.Encoder()


class ApiError(Exception):
    """A Binance error reply (HTTP 400 unless told otherwise)."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def parse_query(raw: str) -> dict[str, str]:
    """Query string -> dict, percent-decoded but '+' kept literal (as in "+08:00")."""
    out: dict[str, str] = {}
    for part in raw.split("&"):
        if part:
            k, _, v = part.partition("=")
            out.setdefault(unquote(k), unquote(v))
    return out


def _mandatory(name: str) -> ApiError:
    return ApiError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                           f"or malformed.")


def _int_param(q: dict[str, str], name: str, default: int | None = None) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.match(raw):
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                              f"'^[0-9]{{1,20}}$'.")
    return int(raw)


def _depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def _symbols_weight(q: dict[str, str], one: int, many: Callable[[int], int]) -> int:
    if q.get("symbol"):
        return one
    raw = q.get("symbols")
    if raw:
        try:
            return many(len(json.loads(raw)))
        except (ValueError, TypeError):
            return many(1)
    return many(10_000)


def _weight(route: str, q: dict[str, str]) -> int:
    if route == "depth":
        try:
            limit = int(q.get("limit") or 100)
        except ValueError:
            limit = 100
        return _depth_weight(min(max(limit, 1), 5000))
    if route == "ticker/24hr":
        return _symbols_weight(q, 2, lambda n: 2 if n <= 20 else 40 if n <= 100 else 80)
    if route in ("ticker/price", "ticker/bookTicker"):
        return _symbols_weight(q, 2, lambda n: 4)
    return {"ping": 1, "time": 1, "exchangeInfo": 20, "aggTrades": 4, "trades": 25,
            "historicalTrades": 25, "klines": 2, "uiKlines": 2, "avgPrice": 2}.get(route, 1)


def _tz_ms(raw: str | None) -> int:
    if not raw:
        return 0
    m = _TZ_RE.match(raw)
    if m is None:
        raise ApiError(-1100, "Illegal characters found in parameter 'timeZone'.")
    ms = (int(m[2]) * 60 + int(m[3] or 0)) * 60_000
    ms = -ms if m[1] == "-" else ms
    if not -12 * kl.HOUR <= ms <= 14 * kl.HOUR:
        raise ApiError(-1130, "Data sent for parameter 'timeZone' is not valid.")
    return ms


class RestApi:
    """Routes /api/v3/<name> requests; weight is charged before validation, as Binance does."""

    def __init__(self, ex: _Exchange) -> None:
        self.ex = ex
        self.routes: dict[str, Callable[[dict[str, str]], Any]] = {
            "ping": lambda q: {},
            "time": lambda q: {"serverTime": ex.now_ms()},
            "exchangeInfo": self.exchange_info,
            "depth": self.depth,
            "trades": self.trades,
            "historicalTrades": self.trades,
            "aggTrades": self.agg_trades,
            "klines": self.klines,
            "uiKlines": self.klines,
            "ticker/bookTicker": self.book_ticker,
            "ticker/price": self.price,
            "ticker/24hr": self.ticker_24hr,
            "avgPrice": self.avg_price,
        }

    async def handle(self, request: web.Request, route: str) -> web.Response:
        ex = self.ex
        ex.stats.rest_requests += 1
        ip = request.remote or ""
        q = parse_query(request.rel_url.raw_query_string)
        handler = self.routes.get(route)
        now = time.time()
        if handler is None:
            return web.Response(status=404, text="",
                                headers={"X-MBX-USED-WEIGHT-1M": str(ex.limiter.used(ip, now))})
        injected = ex.faults.rest_reply(route)  # fault: 429/418/5xx for the next N requests
        if injected is not None:
            return injected
        verdict = ex.limiter.charge(ip, _weight(route, q), now)
        ex.faults.note_rest_status(verdict.status, verdict.retry_after)
        headers = {"X-MBX-USED-WEIGHT-1M": str(verdict.used)}
        if verdict.status == 429:
            headers["Retry-After"] = str(verdict.retry_after)
            return self._error(ApiError(
                -1003, f"Too much request weight used; current limit is {ex.limiter.limit} "
                       f"request weight per 1 MINUTE. Please use WebSocket Streams for live "
                       f"updates to avoid polling the API.", 429), headers)
        if verdict.status == 418:
            headers["Retry-After"] = str(verdict.retry_after)
            return self._error(ApiError(
                -1003, f"Way too much request weight used; IP banned until "
                       f"{verdict.banned_until_ms}. Please use WebSocket Streams for live "
                       f"updates to avoid bans.", 418), headers)
        try:
            body = handler(q)
        except ApiError as err:
            return self._error(err, headers)
        data = body.encode() if isinstance(body, str) else _enc.encode(body)
        if ex.faults.rest_delay_s > 0:  # fault: computed now, delivered late
            await asyncio.sleep(ex.faults.rest_delay_s)
        return web.Response(body=data, content_type="application/json", headers=headers)

    @staticmethod
    def _error(err: ApiError, headers: dict[str, str]) -> web.Response:
        return web.Response(status=err.status, content_type="application/json", headers=headers,
                            body=_enc.encode({"code": err.code, "msg": err.msg}))

    # ------------------------------------------------------------------ helpers
    def _symbol(self, q: dict[str, str], name: str = "symbol") -> str:
        sym = q.get(name)
        if not sym:
            raise _mandatory(name)
        if not _SYMBOL_RE.match(sym):
            raise ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                                  f"is '^[A-Z0-9-_.]{{1,20}}$'.")
        if sym not in self.ex.all_symbols:
            raise ApiError(-1121, "Invalid symbol.")
        return sym

    def _symbol_list(self, q: dict[str, str]) -> list[str]:
        """Symbols named by `symbol` or `symbols` (JSON array), else every symbol."""
        if q.get("symbol"):
            return [self._symbol(q)]
        raw = q.get("symbols")
        if not raw:
            return list(self.ex.all_symbols)
        try:
            names = json.loads(raw)
        except ValueError:
            raise _mandatory("symbols") from None
        if not isinstance(names, list) or not names:
            raise _mandatory("symbols")
        return [self._symbol({"symbol": str(n)}) for n in names]

    def _market(self, q: dict[str, str]) -> Market | None:
        """The synthetic market of `symbol` (None for a replayed symbol)."""
        return self.ex.markets.get(self._symbol(q))

    def _limit(self, q: dict[str, str], default: int, cap: int) -> int:
        limit = _int_param(q, "limit", default)
        assert limit is not None
        return min(max(limit, 1), cap)

    # ------------------------------------------------------------------ endpoints
    def exchange_info(self, q: dict[str, str]) -> dict:
        ex = self.ex
        syms = self._symbol_list(q)
        return {
            "timezone": "UTC",
            "serverTime": ex.now_ms(),
            "rateLimits": [
                _weight_rate_limit(ex.limiter.limit, ex.limiter.window_s),
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                 "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 300000},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(s) for s in syms],
        }

    def _symbol_info(self, symbol: str) -> dict:
        spec = self.ex.config.spec(symbol)
        return {
            "symbol": symbol, "status": "TRADING", "baseAsset": spec.base,
            "baseAssetPrecision": 8, "quoteAsset": spec.quote, "quotePrecision": 8,
            "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                           "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True,
            "cancelReplaceAllowed": True, "amendAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": fmt8(spec.tick_units),
                 "maxPrice": "1000000.00000000", "tickSize": fmt8(spec.tick_units)},
                {"filterType": "LOT_SIZE", "minQty": fmt8(spec.step_units),
                 "maxQty": "9000.00000000", "stepSize": fmt8(spec.step_units)},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
                 "maxQty": "1000.00000000", "stepSize": "0.00000000"},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
                 "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
                 "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
                 "bidMultiplierDown": "0.2", "askMultiplierUp": "5", "askMultiplierDown": "0.2",
                 "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False,
                 "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER",
                                                "EXPIRE_BOTH"],
        }

    def depth(self, q: dict[str, str]) -> Any:
        sym = self._symbol(q)
        limit = self._limit(q, 100, 5000)
        m = self.ex.markets.get(sym)
        if m is None:
            return self.ex.replay_snapshot(sym) or {"lastUpdateId": 0, "bids": [], "asks": []}
        uid, bids, asks = m.depth(limit)
        return {"lastUpdateId": uid, "bids": bids, "asks": asks}

    def trades(self, q: dict[str, str]) -> list[dict]:
        m = self._market(q)
        limit = self._limit(q, 500, 1000)
        from_id = _int_param(q, "fromId")
        if m is None:
            return []
        rows = _from_id(m.trades, from_id, limit)
        return [{"id": t, "price": m.price_str(p), "qty": m.qty_str(n),
                 "quoteQty": m.quote_str(p * n), "time": ts, "isBuyerMaker": bm,
                 "isBestMatch": True} for t, p, n, ts, bm in rows]

    def agg_trades(self, q: dict[str, str]) -> list[dict]:
        m = self._market(q)
        limit = self._limit(q, 500, 1000)
        from_id = _int_param(q, "fromId")
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        if m is None:
            return []
        if from_id is not None:
            rows = _from_id(m.aggs, from_id, limit)
        else:
            sel = [a for a in m.aggs if (start is None or a[5] >= start)
                   and (end is None or a[5] <= end)] if (start or end) else list(m.aggs)
            rows = sel[:limit] if start is not None else sel[-limit:]
        return [{"a": a, "p": m.price_str(p), "q": m.qty_str(n), "f": f, "l": last, "T": ts,
                 "m": bm, "M": True} for a, p, n, f, last, ts, bm in rows]

    def klines(self, q: dict[str, str]) -> list[list]:
        m = self._market(q)
        iv = q.get("interval")
        if not iv:
            raise _mandatory("interval")
        if iv not in kl.INTERVALS:
            raise ApiError(-1120, "Invalid interval.")
        limit = self._limit(q, 500, 1000)
        start, end = _int_param(q, "startTime"), _int_param(q, "endTime")
        tz = _tz_ms(q.get("timeZone"))
        if m is None:
            return []
        rows = m.klines(iv, tz, start, end, limit, self.ex.now_ms())
        return [[k[kl.T], m.price_str(k[kl.O]), m.price_str(k[kl.H]), m.price_str(k[kl.L]),
                 m.price_str(k[kl.C]), m.qty_str(k[kl.V]), kl.bucket_next(iv, k[kl.T], tz) - 1,
                 m.quote_str(k[kl.Q]), k[kl.N], m.qty_str(k[kl.TV]), m.quote_str(k[kl.TQ]), "0"]
                for k in rows]

    def book_ticker(self, q: dict[str, str]) -> Any:
        rows = []
        for sym in self._symbol_list(q):
            m = self.ex.markets.get(sym)
            if m is None:
                rec = self.ex.replay_book_ticker(sym)
                if rec is None:
                    continue
                rows.append({"symbol": sym, "bidPrice": rec["b"], "bidQty": rec["B"],
                             "askPrice": rec["a"], "askQty": rec["A"]})
                continue
            bp, bq, ap, aq = m.top()
            rows.append({"symbol": sym, "bidPrice": m.price_str(bp or 0), "bidQty": m.qty_str(bq),
                         "askPrice": m.price_str(ap or 0), "askQty": m.qty_str(aq)})
        return rows[0] if q.get("symbol") and rows else rows

    def price(self, q: dict[str, str]) -> Any:
        rows = [{"symbol": s, "price": m.price_str(m.last_price)}
                for s in self._symbol_list(q) if (m := self.ex.markets.get(s)) is not None]
        return rows[0] if q.get("symbol") and rows else rows

    def ticker_24hr(self, q: dict[str, str]) -> Any:
        mini = (q.get("type") or "FULL").upper() == "MINI"
        now = self.ex.now_ms()
        rows = []
        for sym in self._symbol_list(q):
            m = self.ex.markets.get(sym)
            if m is None:
                continue
            st = m.stats(now)
            row: dict[str, Any] = {"symbol": sym}
            if not mini:
                bp, bq, ap, aq = m.top()
                row.update({
                    "priceChange": fmt8((st["c"] - st["o"]) * m.tick_units),
                    "priceChangePercent": fmt_ratio((st["c"] - st["o"]) * 100, st["o"], 3),
                    "weightedAvgPrice": fmt8(st["q"] * m.tick_units // st["v"] if st["v"]
                                             else st["c"] * m.tick_units),
                    "prevClosePrice": m.price_str(st["x"]),
                    "lastPrice": m.price_str(st["c"]), "lastQty": m.qty_str(st["Q"]),
                    "bidPrice": m.price_str(bp or 0), "bidQty": m.qty_str(bq),
                    "askPrice": m.price_str(ap or 0), "askQty": m.qty_str(aq)})
            row.update({
                "openPrice": m.price_str(st["o"]), "highPrice": m.price_str(st["h"]),
                "lowPrice": m.price_str(st["l"]), "lastPrice": m.price_str(st["c"]),
                "volume": m.qty_str(st["v"]), "quoteVolume": m.quote_str(st["q"]),
                "openTime": st["O"], "closeTime": st["C"], "firstId": st["F"],
                "lastId": st["L"], "count": st["n"]})
            rows.append(row)
        return rows[0] if q.get("symbol") and rows else rows

    def avg_price(self, q: dict[str, str]) -> dict:
        m = self._market(q)
        if m is None:
            raise ApiError(-1121, "Invalid symbol.")
        now = self.ex.now_ms()
        st = m.stats(now, 5 * kl.MINUTE)
        price = st["q"] * m.tick_units // st["v"] if st["v"] else m.last_price * m.tick_units
        last = m.trades[-1][3] if m.trades else now
        return {"mins": 5, "price": fmt8(price), "closeTime": last}


def _from_id(seq: Any, from_id: int | None, limit: int) -> list:
    """Rows of an id-contiguous deque starting at `from_id` (most recent when None)."""
    if not seq:
        return []
    if from_id is None:
        n = len(seq)
        return [seq[i] for i in range(max(0, n - limit), n)]
    first = seq[0][0]
    start = max(0, from_id - first)
    return [seq[i] for i in range(start, min(len(seq), start + limit))]


def _weight_rate_limit(limit: int, window_s: float) -> dict:
    """REQUEST_WEIGHT as exchangeInfo states it; tests shorten the window to seconds."""
    if window_s == 60:
        return {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                "limit": limit}
    return {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND",
            "intervalNum": max(1, round(window_s)), "limit": limit}
