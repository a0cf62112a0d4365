"""Fault injection hooks (``LocalExchange.faults``) for client resilience tests.

Socket faults act on the connections open at the time of the call (``drop_all``,
``close_all``, ``stall``, ``send_*``, ``duplicate_last``, ``reorder_next``,
``truncate_next``); ``slow_drip`` and ``set_lifetime`` also apply to connections opened
later. REST faults (``slow_rest``, ``rest_errors``) act on the next requests, clock
faults (``set_clock``) on the exchange time every endpoint and stream uses.

Bookkeeping for harnesses: ``truncated`` keeps the original text of every frame sent
cut short, ``rest_log`` one ``(monotonic time, route, status, retry_after_s)`` per REST
request, and
``injected`` counts what was injected per fault.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from .config import ExchangeConfig
from .market import Market

if TYPE_CHECKING:
    from .connection import Connection


class _Exchange(Protocol):
    """What the fault hooks act on (``server.LocalExchange``)."""

    config: ExchangeConfig

    @property
    def connections(self) -> list[Connection]: ...

    def market(self, symbol: str) -> Market: ...

    def used_weight(self, ip: str = ...) -> int: ...

    def now_ms(self) -> int: ...

_MALFORMED = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":17231612',
    "this is not json",
    '{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":',
    "]}",
)
_REPLY_PREFIXES = ('{"result"', '{"id"', '{"error"', '{"code"')

# Binance's error bodies: 429/418 come from the weight limiter, 5xx from its gateway.
_REST_BODIES = {
    429: (-1003, "Too many requests; current limit of IP is exceeded (injected fault)."),
    418: (-1003, "Way too much request weight used; IP banned (injected fault)."),
    500: (-1001, "Internal error; unable to process your request. Please try again."),
    502: (None, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in "
                 "a few minutes."),
    504: (None, "<html><body><h1>504 Gateway Time-out</h1></body></html>"),
}


def is_data(text: str) -> bool:
    """A market-data frame (not a control reply, not ``serverShutdown``)."""
    return text.startswith("{") and not text.startswith(_REPLY_PREFIXES) \
        and "serverShutdown" not in text[:64]


def _stream_key(text: str) -> str:
    """What identifies a frame's stream: the combined envelope's name, else the event type."""
    end = text.find(',"data"')
    return text[:end] if end > 0 else text[:14]


class Faults:
    """Each hook acts on the connections open at the time of the call (see the module doc)."""

    def __init__(self, ex: _Exchange) -> None:
        self.ex = ex
        self.rest_delay_s = 0.0
        self.drip_s = 0.0  # every frame to every connection is sent this late (slow drip)
        self.active = False  # a per-frame fault is pending: the writers consult outgoing()
        self.truncated: list[tuple[int, str]] = []  # (conn id, original text) sent cut short
        self.rest_log: list[tuple[float, str, int, float]] = []  # (t, route, status, retry)
        self.injected: Counter[str] = Counter()
        self._rest_fail: list[tuple[int, float]] = []  # (status, retry_after) per next request
        self._drift_ppm = 0.0
        self._drift_anchor_ns = 0
        self._drift_base_ms = 0.0

    # ------------------------------------------------------------------ REST
    def slow_rest(self, seconds: float) -> None:
        """Deliver every REST reply `seconds` late (0 restores). The body is computed when
        the request arrives, so a depth snapshot is older than the diffs sent meanwhile:
        the bridging diff reaches the client *before* the snapshot, as in real data."""
        self.rest_delay_s = max(0.0, seconds)

    def rest_errors(self, status: int, n: int, retry_after: float = 1.0) -> None:
        """The next `n` REST requests (any route) fail with `status`: 429 or 418 (with
        ``Retry-After``, Binance's -1003 body) or a 5xx (500/502/503/504, JSON or an HTML
        gateway page). Injected replies are not charged to the weight limiter and are not
        counted in ``limiter.rejected``; ``injected["rest_<status>"]`` counts them."""
        if status not in _REST_BODIES:
            raise ValueError(f"status {status} not supported; use one of {sorted(_REST_BODIES)}")
        self._rest_fail.extend([(status, retry_after)] * n)

    def rest_reply(self, route: str) -> web.Response | None:
        """Called by the REST handler for every request: an injected failure, or None."""
        if not self._rest_fail:
            self.rest_log.append((time.monotonic(), route, 200, 0.0))
            return None
        status, retry_after = self._rest_fail.pop(0)
        self.injected[f"rest_{status}"] += 1
        self.rest_log.append((time.monotonic(), route, status,
                              retry_after if status in (418, 429) else 0.0))
        code, msg = _REST_BODIES[status]
        headers = {"X-MBX-USED-WEIGHT-1M": str(self.ex.used_weight())}
        if status in (418, 429):
            headers["Retry-After"] = str(max(0, round(retry_after)))
        if code is None:
            return web.Response(status=status, text=msg, content_type="text/html",
                                headers=headers)
        return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)

    def note_rest_status(self, status: int, retry_after: float = 0.0) -> None:
        """The REST handler's real outcome of the request just logged (e.g. a real 429)."""
        if self.rest_log and self.rest_log[-1][2] == 200 and status != 200:
            t, route, _, _ = self.rest_log[-1]
            self.rest_log[-1] = (t, route, status, retry_after)

    # ------------------------------------------------------------------ clock
    def set_clock(self, offset_ms: int | None = None, drift_ppm: float | None = None) -> None:
        """Move the exchange clock at runtime: a step to `offset_ms` (exchange − local
        wall clock) and/or a drift of `drift_ppm` µs per second from now on (the drift
        accumulated so far is kept, so changing it never steps the clock)."""
        if drift_ppm is not None:
            self._drift_base_ms = self.drift_ms()
            self._drift_anchor_ns = time.time_ns()
            self._drift_ppm = float(drift_ppm)
        if offset_ms is not None:
            self.ex.config.clock_offset_ms = int(offset_ms)
            self._drift_base_ms = 0.0
            self._drift_anchor_ns = time.time_ns()

    def drift_ms(self) -> float:
        """Milliseconds the drift has added to the exchange clock so far."""
        if not self._drift_ppm:
            return self._drift_base_ms
        return self._drift_base_ms + (time.time_ns() - self._drift_anchor_ns) \
            * self._drift_ppm / 1e12

    # ------------------------------------------------------------------ lifetime
    def set_lifetime(self, seconds: float, existing: bool = True,
                     notice: bool | None = None) -> None:
        """Connection lifetime (Binance: 24 h) for new connections and, with `existing`,
        for the open ones (counted from when each opened). `notice` sends serverShutdown
        just before the lifetime close (``lifetime_notice``)."""
        self.ex.config.lifetime = seconds
        if notice is not None:
            self.ex.config.lifetime_notice = notice
        if existing:
            for c in self.ex.connections:
                c.lifetime_end = c.started + seconds

    # ------------------------------------------------------------------ connection faults
    def corrupt_next_diff(self, symbol: str) -> None:
        """The next diff-depth event of `symbol` (every speed) silently omits one changed
        level while its ids stay contiguous: a wrong book no sequence check can see."""
        self.ex.market(symbol).corrupt_next_diff()

    def drop_all(self) -> int:
        """Abort the TCP connection of every WebSocket: no close frame, the client sees an
        abnormal closure (1006). Frames still in flight are lost. Returns the count."""
        conns = self.ex.connections
        for c in conns:
            c.abort()
        self.injected["drop"] += len(conns)
        return len(conns)

    def close_all(self, code: int = 1001, reason: str = "") -> int:
        """Close every WebSocket with a proper close frame (e.g. 1008 policy violation,
        1001 going away). Frames queued after the close are not sent."""
        conns = self.ex.connections
        for c in conns:
            c.close(code, reason)
        self.injected[f"close_{code}"] += len(conns)
        return len(conns)

    def stall(self, on: bool = True) -> None:
        """Freeze (or unfreeze) existing connections: sockets stay open, nothing is sent,
        not even pings; events published meanwhile are not delivered to them."""
        for c in self.ex.connections:
            c.stalled = on
            c.wake()

    def send_malformed(self, n: int = 1) -> None:
        """Send `n` non-JSON / truncated text frames to every connection."""
        for c in self.ex.connections:
            for i in range(n):
                c.enqueue(_MALFORMED[i % len(_MALFORMED)])
        self.injected["malformed"] += n

    def send_unknown(self, n: int = 1) -> None:
        """Send `n` well-formed frames of event types and streams the client never asked
        for (a new Binance stream, an unknown event type, an array stream)."""
        now = self.ex.now_ms()
        for c in self.ex.connections:
            for i in range(n):
                kind = i % 3
                if kind == 0:
                    stream = "btcusdt@futureStream"
                    data = json.dumps({"e": "futureStream", "E": now, "s": "BTCUSDT", "x": i})
                elif kind == 1:
                    stream = "!newGlobal@arr"
                    data = json.dumps([{"e": "newGlobal", "E": now, "s": "BTCUSDT"}])
                else:
                    stream = "btcusdt@brandNew"
                    data = json.dumps({"e": "brandNewEvent", "E": now, "k": {"v": i}})
                c.enqueue(f'{{"stream":"{stream}","data":{data}}}' if c.combined else data)
        self.injected["unknown"] += n

    def truncate_next(self, n: int = 1) -> None:
        """The next `n` market-data frames to every open connection are sent cut in half
        (invalid JSON): those events are lost to the client. Originals go to ``truncated``."""
        for c in self.ex.connections:
            c.truncate_left += n
        self._arm()

    def duplicate_last(self, n: int = 1) -> int:
        """Send again, now, the last `n` market-data frames each connection was sent (a
        server-side replay after a hiccup). Returns the frames re-sent."""
        total = 0
        for c in self.ex.connections:
            again = [t for t in c.recent if is_data(t)][-n:]
            c.queue.extendleft(reversed(again))
            c.wake()
            total += len(again)
        self.injected["duplicate"] += total
        return total

    def reorder_next(self, n: int = 1) -> None:
        """Out of order: on every open connection, hold the next market-data frame back and
        send it right after the following frame of the same stream (a swapped pair);
        repeated `n` times."""
        for c in self.ex.connections:
            c.reorder_left += n
        self._arm()

    def slow_drip(self, seconds: float) -> None:
        """Send every frame `seconds` after the previous one, on every connection (0
        restores). Faster production backs up the queue until the server drops the client
        as a slow consumer (1008), as Binance does."""
        self.drip_s = max(0.0, seconds)
        self._arm()

    def skip_depth_id(self, symbol: str) -> None:
        """The next diff-depth event of `symbol` (every speed) has U = previous u + 2."""
        self.ex.market(symbol).skip_update_id()

    def server_shutdown(self, close_after_s: float = 1.0, code: int = 1001) -> None:
        """Send serverShutdown to every connection, then close them after the delay."""
        conns = self.ex.connections
        for c in conns:
            c.send_shutdown_notice()
        loop = asyncio.get_running_loop()
        for c in conns:
            loop.call_later(close_after_s, c.close, code, "Server shutdown")

    # ------------------------------------------------------------------ writer hook
    def _arm(self) -> None:
        self.active = self.drip_s > 0 or any(c.truncate_left or c.reorder_left or c.held
                                             for c in self.ex.connections)

    def outgoing(self, conn: Connection, text: str) -> list[str]:
        """Called by a connection's writer while ``active``: the frames to send for `text`."""
        if not is_data(text):
            return [text]
        if conn.truncate_left > 0:
            conn.truncate_left -= 1
            self.truncated.append((conn.id, text))
            self.injected["truncated"] += 1
            text = text[: max(1, len(text) // 2)]
            if not conn.truncate_left:
                self._arm()
            return [text]
        if conn.held is not None:
            held_key, held = conn.held
            if _stream_key(text) == held_key:
                conn.held = None
                self._arm()
                return [text, held]
            return [text]
        if conn.reorder_left > 0:
            conn.reorder_left -= 1
            conn.held = (_stream_key(text), text)
            self.injected["reordered"] += 1
            return []
        return [text]
