"""Deterministic matching engine of one symbol, driven by seeded random order flow.

Why pure: tests (and ``LocalExchange.step``) advance it synchronously and compare
exact values, so it does no I/O, reads no clock (callers pass ``now_ms``) and
draws every random number from its own ``random.Random``.

Units: prices are integer ticks, quantities integer lot steps. Every book change
consumes one id of the symbol's single update-id space (diff depth U/u,
bookTicker u, partial depth and REST lastUpdateId).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from itertools import islice

from . import klines as kl
from .config import SymbolSpec
from .fixed import SCALE, fmt8, parse8

BID, ASK = 0, 1
SPEEDS = 2  # diff-depth speeds tracked independently: 0 = 1000 ms, 1 = 100 ms

# Output event tags (see Market.out).
EV_TRADE, EV_AGG, EV_BOOK = "t", "a", "b"


class Level:
    """One price level: FIFO of resting maker orders ``[order_id, qty]``."""

    __slots__ = ("orders", "total")

    def __init__(self) -> None:
        self.orders: deque[list[int]] = deque()
        self.total = 0


class Market:
    """Order book + trades + candles + rolling stats of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, history: int = 100_000,
                 now_ms: int = 0) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.rng = random.Random(f"{seed}:{spec.symbol}")
        self.tick_units = spec.tick_units
        self.step_units = spec.step_units
        self._quote_div = SCALE  # q(ticks*steps) * tick_units * step_units / 1e8 -> 1e-8 units
        self.mean_qty = max(1, parse8(spec.mean_qty) // self.step_units)
        self.books: tuple[dict[int, Level], dict[int, Level]] = ({}, {})
        self.best: list[int | None] = [None, None]
        self.update_id = spec.update_id0 - 1
        self.last_trade_id = spec.trade_id0 - 1
        self.last_agg_id = spec.agg_id0 - 1
        self._next_oid = 1
        self.trades: deque[tuple[int, int, int, int, bool]] = deque(maxlen=history)
        self.aggs: deque[tuple[int, int, int, int, int, int, bool]] = deque(maxlen=history)
        self.last_price = parse8(spec.price) // self.tick_units
        self.last_qty = 0
        self.k1s: list[int] | None = None
        self.k1m: list[int] | None = None
        self.hist1s: deque[list[int]] = deque(maxlen=20_000)
        self.hist1m: deque[list[int]] = deque(maxlen=50_000)
        self.close_before: dict[int, int] = {}
        # Levels changed since the last diff of each speed, per side.
        self._changed: list[tuple[dict[int, None], dict[int, None]]] = [
            ({}, {}) for _ in range(SPEEDS)]
        self._diff_u = [self.update_id] * SPEEDS
        self._top: tuple[int | None, int, int | None, int] = (None, 0, None, 0)
        self._corrupt = [False] * SPEEDS  # fault: omit one level from the next diff per speed
        self.corrupted: list[tuple[int, str, str]] = []  # (speed, side "b"/"a", price) omitted
        # Events produced since the last drain: (tag, time_ms, payload tuple).
        self.out: list[tuple[str, int, tuple]] = []
        self.ops = 0
        self._pstr: dict[int, str] = {}
        self._seed_book(now_ms)

    # ------------------------------------------------------------------ formatting
    def price_str(self, ticks: int) -> str:
        s = self._pstr.get(ticks)
        if s is None:
            s = self._pstr[ticks] = fmt8(ticks * self.tick_units)
        return s

    def qty_str(self, steps: int) -> str:
        return fmt8(steps * self.step_units)

    def quote_str(self, ticks_x_steps: int) -> str:
        return fmt8(ticks_x_steps * self.tick_units * self.step_units // SCALE)

    # ------------------------------------------------------------------ book basics
    def _seed_book(self, now_ms: int) -> None:
        rng = self.rng
        mid = self.last_price
        for side in (BID, ASK):
            sign = -1 if side == BID else 1
            price = mid + sign * (1 if side == ASK else 0)
            for _ in range(self.spec.levels):
                lvl = Level()
                for _ in range(rng.randint(1, 3)):
                    self._push(lvl, self._rand_qty())
                self.books[side][price] = lvl
                price += sign * (1 if rng.random() < 0.5 else rng.randint(2, 6))
            self.best[side] = mid if side == BID else mid + 1
        self.update_id += 1
        self._diff_u = [self.update_id] * SPEEDS
        self._top = self.top()

    def _rand_qty(self) -> int:
        return max(1, int(self.rng.expovariate(1.0 / self.mean_qty)))

    def _push(self, lvl: Level, qty: int) -> None:
        lvl.orders.append([self._next_oid, qty])
        self._next_oid += 1
        lvl.total += qty

    def _mark(self, side: int, price: int) -> None:
        for ch in self._changed:
            ch[side][price] = None

    def _refresh_best(self, side: int, removed: int) -> None:
        book = self.books[side]
        if not book:
            self.best[side] = None
            return
        step = -1 if side == BID else 1
        p = removed + step
        for _ in range(2000):
            if p in book:
                self.best[side] = p
                return
            p += step
        self.best[side] = max(book) if side == BID else min(book)

    def top(self) -> tuple[int | None, int, int | None, int]:
        """(best bid ticks, its qty, best ask ticks, its qty)."""
        b, a = self.best
        return (b, self.books[BID][b].total if b is not None else 0,
                a, self.books[ASK][a].total if a is not None else 0)

    def _after_change(self, now_ms: int) -> None:
        top = self.top()
        if top != self._top:
            self._top = top
            self.out.append((EV_BOOK, now_ms, (self.update_id, *top)))

    # ------------------------------------------------------------------ operations
    def add(self, side: int, price: int, qty: int, now_ms: int) -> None:
        """Rest a limit order (never crossing: callers keep it on its own side)."""
        book = self.books[side]
        lvl = book.get(price)
        if lvl is None:
            lvl = book[price] = Level()
            b = self.best[side]
            if b is None or (price > b if side == BID else price < b):
                self.best[side] = price
        self._push(lvl, qty)
        self.update_id += 1
        self._mark(side, price)
        self._after_change(now_ms)

    def cancel(self, side: int, price: int, index: int, now_ms: int) -> None:
        book = self.books[side]
        lvl = book[price]
        order = lvl.orders[index]
        del lvl.orders[index]
        lvl.total -= order[1]
        if not lvl.orders:
            del book[price]
            if price == self.best[side]:
                self._refresh_best(side, price)
        self.update_id += 1
        self._mark(side, price)
        self._after_change(now_ms)

    def take(self, taker_buys: bool, qty: int, now_ms: int) -> None:
        """A market order: one trade per maker fill, one aggTrade per price level."""
        side = ASK if taker_buys else BID
        book = self.books[side]
        buyer_maker = not taker_buys
        self.update_id += 1
        remaining = qty
        while remaining > 0 and book:
            price = self.best[side]
            assert price is not None  # a non-empty side always has a best price
            lvl = book[price]
            first = self.last_trade_id + 1
            filled = 0
            orders = lvl.orders
            while remaining and orders:
                order = orders[0]
                f = order[1] if order[1] < remaining else remaining
                self.last_trade_id += 1
                self._trade(self.last_trade_id, price, f, now_ms, buyer_maker)
                order[1] -= f
                remaining -= f
                filled += f
                if order[1] == 0:
                    orders.popleft()
            lvl.total -= filled
            self.last_agg_id += 1
            agg = (self.last_agg_id, price, filled, first, self.last_trade_id, now_ms, buyer_maker)
            self.aggs.append(agg)
            self.out.append((EV_AGG, now_ms, agg))
            self._mark(side, price)
            if not orders:
                del book[price]
                self._refresh_best(side, price)
        self._after_change(now_ms)

    def _trade(self, tid: int, price: int, qty: int, now_ms: int, buyer_maker: bool) -> None:
        tr = (tid, price, qty, now_ms, buyer_maker)
        self.trades.append(tr)
        self.out.append((EV_TRADE, now_ms, tr))
        self.last_price = price
        self.last_qty = qty
        k = self.k1s
        if k is None or now_ms - k[0] >= kl.SECOND:
            if k is not None:
                self.hist1s.append(k)
            k = self.k1s = kl.new_candle(now_ms - now_ms % kl.SECOND, price)
        kl.add_trade(k, tid, price, qty, buyer_maker)
        k = self.k1m
        if k is None or now_ms - k[0] >= kl.MINUTE:
            if k is not None:
                self.hist1m.append(k)
            k = self.k1m = kl.new_candle(now_ms - now_ms % kl.MINUTE, price)
        kl.add_trade(k, tid, price, qty, buyer_maker)

    def skip_update_id(self) -> None:
        """Fault: burn one id so the next diff of every speed starts at prev u + 2."""
        self.update_id += 1
        for i in range(SPEEDS):
            self._diff_u[i] += 1

    def corrupt_next_diff(self) -> None:
        """Fault: the next diff of every speed leaves out one changed level (ids unchanged)."""
        self._corrupt = [True] * SPEEDS

    # ------------------------------------------------------------------ random flow
    def step(self, now_ms: int, n: int = 1) -> None:
        """Run `n` random order-flow operations near the top of the book."""
        rng = self.rng
        for _ in range(n):
            self.ops += 1
            r = rng.random()
            side = BID if rng.random() < 0.5 else ASK
            book = self.books[side]
            if len(book) < 150 or r < 0.50:
                self._random_add(side, now_ms)
            elif r < 0.86:
                self._random_cancel(side, now_ms)
            else:
                self._random_take(side, now_ms)

    def _random_add(self, side: int, now_ms: int) -> None:
        rng = self.rng
        book = self.books[side]
        own, opp = self.best[side], self.best[1 - side]
        sign = -1 if side == BID else 1
        if len(book) < 150 and own is not None:  # refill the deep book
            far = min(book) if side == BID else max(book)
            price = far + sign * rng.randint(1, 4)
        elif own is None:
            price = opp + sign if opp is not None else self.last_price
        elif opp is not None and abs(opp - own) > 1 and rng.random() < 0.2:
            price = own - sign  # improve inside the spread
        else:
            price = own + sign * int(rng.expovariate(0.12))
        if price <= 0:
            return
        self.add(side, price, self._rand_qty(), now_ms)

    def _random_cancel(self, side: int, now_ms: int) -> None:
        rng = self.rng
        book = self.books[side]
        own = self.best[side]
        if own is None or len(book) <= 1:
            return
        sign = -1 if side == BID else 1
        price = own + sign * int(rng.expovariate(0.12))
        for _ in range(8):
            lvl = book.get(price)
            if lvl is not None:
                self.cancel(side, price, rng.randrange(len(lvl.orders)), now_ms)
                return
            price += sign

    def _random_take(self, side: int, now_ms: int) -> None:
        """Taker consuming `side` (bids when the taker sells): usually a partial of
        the best level, sometimes a sweep of several levels."""
        rng = self.rng
        book = self.books[side]
        if len(book) < 20:
            return
        levels = 1 + min(4, int(rng.expovariate(1.3)))
        qty = 0
        for i, price in enumerate(islice(self._walk(side), levels)):
            total = book[price].total
            qty += total if i < levels - 1 else rng.randint(1, total)
        self.take(side == ASK, qty, now_ms)

    # ------------------------------------------------------------------ views
    def _walk(self, side: int) -> Iterator[int]:
        """Prices of `side` from best outwards (dense near the top, sorted fallback)."""
        book = self.books[side]
        p = self.best[side]
        if p is None:
            return
        step = -1 if side == BID else 1
        for _ in range(400):
            if p in book:
                yield p
            p += step
        rest = sorted((q for q in book if (q < p + 1 if side == BID else q > p - 1)),
                      reverse=side == BID)
        yield from rest

    def depth(self, limit: int) -> tuple[int, list[list[str]], list[list[str]]]:
        """(lastUpdateId, bids best first, asks best first), at most `limit` per side."""
        out = []
        for side in (BID, ASK):
            book = self.books[side]
            if limit <= 50:
                prices = list(islice(self._walk(side), limit))
            else:
                prices = sorted(book, reverse=side == BID)[:limit]
            out.append([[self.price_str(p), self.qty_str(book[p].total)] for p in prices])
        return self.update_id, out[0], out[1]

    def book_levels(self) -> tuple[dict[str, str], dict[str, str]]:
        """The whole book as ``price -> qty`` 8-decimal strings (for exact comparisons)."""
        bids, asks = (
            {self.price_str(p): self.qty_str(lvl.total) for p, lvl in book.items()}
            for book in self.books)
        return bids, asks

    def take_diff(self, speed: int) -> tuple[int, int, list[list[str]], list[list[str]]] | None:
        """Levels changed since the previous diff of `speed`, with absolute quantities.

        Returns None (nothing to publish) when nothing changed, so diffs are never empty.
        """
        ch_b, ch_a = self._changed[speed]
        if not ch_b and not ch_a:
            return None
        sides = []
        for side, ch in ((BID, ch_b), (ASK, ch_a)):
            book = self.books[side]
            rows = []
            for p in sorted(ch, reverse=side == BID):
                lvl = book.get(p)
                rows.append([self.price_str(p), self.qty_str(lvl.total) if lvl else "0.00000000"])
            ch.clear()
            sides.append(rows)
        if self._corrupt[speed]:
            self._corrupt[speed] = False
            # the deepest changed level (of bids if any): the least likely to heal itself
            side = 0 if sides[0] else 1
            price, _ = sides[side].pop()
            self.corrupted.append((speed, "ba"[side], price))
        first = self._diff_u[speed] + 1
        self._diff_u[speed] = self.update_id
        return first, self.update_id, sides[0], sides[1]

    def reset_diffs(self) -> None:
        """Forget pending diff changes (after warm-up): the next diff starts at update_id + 1."""
        for ch_b, ch_a in self._changed:
            ch_b.clear()
            ch_a.clear()
        self._diff_u = [self.update_id] * SPEEDS

    def drain(self) -> list[tuple[str, int, tuple]]:
        out, self.out = self.out, []
        return out

    # ------------------------------------------------------------------ candles/stats
    def base_candles(self, interval: str) -> list[list[int]]:
        """Time-ordered base candles: 1s ones for the 1s interval, 1m for everything else."""
        hist, cur = (self.hist1s, self.k1s) if interval == "1s" else (self.hist1m, self.k1m)
        return [*hist, cur] if cur is not None else list(hist)

    def candles_since(self, interval: str, start: int) -> list[list[int]]:
        """Base candles with open time >= start (scans from the newest end)."""
        hist, cur = (self.hist1s, self.k1s) if interval == "1s" else (self.hist1m, self.k1m)
        out = [cur] if cur is not None and cur[0] >= start else []
        for k in reversed(hist):
            if k[0] < start:
                break
            out.append(k)
        out.reverse()
        return out

    def close_before_time(self, interval: str, start: int) -> int:
        """Close of the last base candle opening before `start` (else the first open)."""
        hist, cur = (self.hist1s, self.k1s) if interval == "1s" else (self.hist1m, self.k1m)
        seq = [*hist, cur] if cur is not None else list(hist)
        for k in reversed(seq):
            if k[0] < start:
                return k[kl.C]
        return seq[0][kl.O] if seq else self.last_price

    def candle(self, interval: str, tz_ms: int, start: int) -> list[int]:
        """The candle of `interval` opening at `start` (may be empty: f = L = -1)."""
        end = kl.bucket_next(interval, start, tz_ms)
        acc = kl.new_candle(start, self.close_before_time(interval, start))
        for k in self.candles_since(interval, start):
            if k[0] >= end:
                break
            kl.merge(acc, k)
        return acc

    def klines(self, interval: str, tz_ms: int, start: int | None, end: int | None,
               limit: int, now_ms: int) -> list[list[int]]:
        """REST klines: contiguous candles filtered like Binance (start/end/limit)."""
        base = self.base_candles(interval)
        prev = base[0][kl.O] if base else self.last_price
        rows = kl.aggregate(interval, tz_ms, base, prev, now_ms)
        if start is not None:
            rows = [k for k in rows if k[0] >= start]
        if end is not None:
            rows = [k for k in rows if k[0] <= end]
        return rows[:limit] if start is not None else rows[-limit:]

    def stats(self, now_ms: int, window_ms: int = kl.DAY) -> dict[str, int]:
        """Rolling-window statistics from 1m candles (the window starts on a minute)."""
        start = now_ms - window_ms
        start -= start % kl.MINUTE
        acc = kl.new_candle(start, self.close_before_time("1m", start))
        prev_close = acc[kl.C]
        for k in self.candles_since("1m", start):
            kl.merge(acc, k)
        return {"o": acc[kl.O], "h": acc[kl.H], "l": acc[kl.L], "c": acc[kl.C],
                "v": acc[kl.V], "q": acc[kl.Q], "F": acc[kl.F], "L": acc[kl.LAST],
                "n": acc[kl.N], "x": prev_close, "O": start, "C": now_ms,
                "Q": self.last_qty}
