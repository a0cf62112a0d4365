"""One WebSocket client connection: outgoing queue, writer task, keepalive, limits.

Why a queue + writer task: publishers fan out synchronously (append only), so a
slow socket never blocks the market; the queue is bounded and a consumer that
falls too far behind is dropped with 1008, as Binance drops slow consumers.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import time
from collections import deque
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from . import control
from .config import ExchangeConfig
from .stats import Stats


class FrameFaults(Protocol):
    """The per-frame fault hooks a writer consults (``faults.Faults``)."""

    active: bool
    drip_s: float

    def outgoing(self, conn: Connection, text: str) -> list[str]: ...


class Hub(Protocol):
    """What a connection needs of the exchange that accepted it (``server.LocalExchange``)."""

    config: ExchangeConfig
    stats: Stats
    sent_log: list[tuple[int, str]]

    @property
    def faults(self) -> FrameFaults: ...

    def subscribe(self, conn: Connection, names: list[str]) -> None: ...

    def unsubscribe(self, conn: Connection, names: list[str]) -> None: ...

    def forget(self, conn: Connection) -> None: ...

    def notify_drained(self) -> None: ...

    def now_ms(self) -> int: ...

_ids = itertools.count(1)
BATCH = 256  # frames per transport.write
HIGH_WATER = 1 << 20  # bytes buffered in the transport before the writer waits
_HEAD1 = struct.Struct("!BB").pack
_HEAD2 = struct.Struct("!BBH").pack
_HEAD3 = struct.Struct("!BBQ").pack


class Connection:
    """Introspectable state of one WebSocket connection (see ``LocalExchange.connections``)."""

    def __init__(self, ex: Hub, ws: web.WebSocketResponse, request: web.Request,
                 path: str, combined: bool, micro: bool) -> None:
        self.id = next(_ids)
        self.ex = ex
        self.ws = ws
        self.path = path
        self.combined = combined
        self.micro = micro
        self.remote = request.remote or ""
        self.transport = request.transport
        self._streams: dict[str, None] = {}
        self.control_log: list[Any] = []
        self.closed = False
        self.close_code: int | None = None  # set when the exchange closes it
        self.close_reason = ""
        self.frames_sent = 0  # every frame written (control replies included)
        self.replies = 0  # control replies queued (SUBSCRIBE & co.)
        self.stalled = False
        self.queue: deque[str | tuple[bytes, int]] = deque()  # texts, or framed chunks
        self.over_soft_since: float | None = None
        self._wake = asyncio.Event()
        self._incoming: deque[float] = deque()
        self._pings: dict[bytes, float] = {}  # outstanding ping payload -> sent (monotonic)
        self.pings_sent = 0
        self.pongs_received = 0
        self.opened = time.monotonic()
        # fault hooks (ex.faults): the last frames sent, pending per-frame faults, lifetime
        self.recent: deque[str] = deque(maxlen=64)
        self.truncate_left = 0
        self.reorder_left = 0
        self.held: tuple[str, str] | None = None
        self.started = asyncio.get_running_loop().time()
        self.lifetime_end = self.started + ex.config.lifetime
        self._tasks: list[asyncio.Task] = []
        self._closing = False

    @property
    def streams(self) -> set[str]:
        return set(self._streams)

    @property
    def stream_names(self) -> dict[str, None]:
        """The subscribed streams, without a copy (read-only)."""
        return self._streams

    def add_stream(self, name: str) -> None:
        self._streams[name] = None

    def drop_stream(self, name: str) -> None:
        self._streams.pop(name, None)

    def wake(self) -> None:
        """Wake the writer (new frames queued, or a fault changed what it may send)."""
        self._wake.set()

    @property
    def mul(self) -> int:
        return 1000 if self.micro else 1

    def report(self) -> dict[str, Any]:
        """What a benchmark checks a client against: frames sent, and how it ended."""
        return {"id": self.id, "path": self.path, "streams": sorted(self._streams),
                "frames_sent": self.frames_sent, "replies": self.replies,
                "queued": len(self.queue), "closed": self.closed,
                "close_code": self.close_code, "close_reason": self.close_reason}

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.path} streams={len(self._streams)}>"

    # ------------------------------------------------------------------ output
    def enqueue(self, text: str) -> None:
        if self._closing:
            return
        self.queue.append(text)
        if len(self.queue) > self.ex.config.max_backlog:
            self.ex.stats.slow_consumers_closed += 1
            self.queue.clear()
            self.close(1008, "Slow consumer", timeout=0.5)
            return
        self._wake.set()

    def enqueue_frames(self, blob: bytes, n: int) -> None:
        """Queue ``n`` frames already framed for the wire (a replay chunk: unmasked,
        uncompressed text frames), written as they are."""
        if not self._closing:
            self.queue.append((blob, n))
            self._wake.set()

    async def _writer(self) -> None:
        ws, stats, log = self.ws, self.ex.stats, self.ex.sent_log
        record = self.ex.config.record_sent
        faults, recent = self.ex.faults, self.recent
        try:
            while not self._closing:
                await self._wake.wait()
                self._wake.clear()
                while self.queue and not self.stalled and not self._closing:
                    if not faults.active and self.transport is not None:
                        await self._write_batch(self.transport, record)
                        continue
                    item = self.queue.popleft()
                    if isinstance(item, tuple):  # a framed chunk, on the frame-by-frame path
                        self.queue.extendleft(reversed(_texts(item[0])))
                        continue
                    text = item
                    if faults.active:  # slow drip, truncated or reordered frames
                        if faults.drip_s > 0:
                            await asyncio.sleep(faults.drip_s)
                        for out in faults.outgoing(self, text):
                            await ws.send_str(out)
                            stats.frames_sent += 1
                            self.frames_sent += 1
                            if record:
                                log.append((self.id, out))
                        recent.append(text)
                        continue
                    await ws.send_str(text)
                    stats.frames_sent += 1
                    self.frames_sent += 1
                    recent.append(text)
                    if record:
                        log.append((self.id, text))
                self.ex.notify_drained()
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass

    async def _write_batch(self, transport: Any, record: bool) -> None:
        """Frame up to BATCH queued texts and write them with one ``transport.write``.

        aiohttp's ``send_str`` writes (and tries a ``send()`` syscall) per frame, which
        caps a connection near 300k frames/s; benchmarks need the exchange to out-run
        the fastest client. Server frames are unmasked and uncompressed
        (``compress=False``), so the framing is a 2/4/10-byte header.
        """
        queue, recent, log = self.queue, self.recent, self.ex.sent_log
        parts: list[bytes] = []
        n = 0
        while queue and n < BATCH:
            item = queue.popleft()
            if isinstance(item, tuple):  # already framed (Passes.chunk)
                parts.append(item[0])
                n += item[1]
                continue
            text = item
            data = text.encode()
            size = len(data)
            if size < 126:
                parts.append(_HEAD1(0x81, size))
            elif size < 65536:
                parts.append(_HEAD2(0x81, 126, size))
            else:
                parts.append(_HEAD3(0x81, 127, size))
            parts.append(data)
            recent.append(text)
            if record:
                log.append((self.id, text))
            n += 1
        if transport.is_closing():
            raise ConnectionError("transport closing")
        transport.write(b"".join(parts))
        self.ex.stats.frames_sent += n
        self.frames_sent += n
        while transport.get_write_buffer_size() > HIGH_WATER and not transport.is_closing():
            await asyncio.sleep(0.001)  # the client is slower than we are: wait for it

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Start a close handshake (idempotent, does not wait); abort after `timeout`."""
        if self._closing:
            return
        self._closing = True
        self.close_code = code
        self.close_reason = reason
        self._wake.set()
        self._tasks.append(asyncio.ensure_future(self._close(code, reason, timeout)))

    async def _close(self, code: int, reason: str, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), timeout)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.abort()

    def abort(self) -> None:
        """Drop the TCP connection without a close frame."""
        self._closing = True
        self._wake.set()
        if self.transport is not None:
            self.transport.abort()

    # ------------------------------------------------------------------ keepalive
    async def _keepalive(self) -> None:
        cfg = self.ex.config
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + cfg.ping_interval
        while not self._closing:
            now = loop.time()
            lifetime_end = self.lifetime_end  # faults.set_lifetime may move it
            if now >= lifetime_end:
                if cfg.lifetime_notice:
                    self.send_shutdown_notice()
                    await asyncio.sleep(0.05)
                self.close(1001, "Connection lifetime exceeded")
                return
            if self.stalled:
                self._pings.clear()
                next_ping = now + cfg.ping_interval
            else:
                if now >= next_ping:
                    payload = str(int(time.time() * 1000)).encode()
                    self._pings[payload] = now
                    next_ping = now + cfg.ping_interval
                    try:
                        await self.ws.ping(payload)
                        self.pings_sent += 1
                    except (ConnectionError, RuntimeError):
                        self.abort()
                        return
                if self._pings and now >= min(self._pings.values()) + cfg.pong_timeout:
                    self.close(1008, "Pong timeout")
                    return
            deadline = min(next_ping, lifetime_end)
            if self._pings:
                deadline = min(deadline, min(self._pings.values()) + cfg.pong_timeout)
            await asyncio.sleep(max(0.001, min(deadline - loop.time(), 0.5)))

    def send_shutdown_notice(self) -> None:
        from .payloads import server_shutdown, wrap
        payload = server_shutdown(self.ex.now_ms(), self.mul)
        self.enqueue(wrap("!serverShutdown", payload) if self.combined else payload)

    # ------------------------------------------------------------------ input
    def _over_rate(self) -> bool:
        now = time.monotonic()
        q = self._incoming
        q.append(now)
        while q and q[0] <= now - 1.0:
            q.popleft()
        return len(q) > self.ex.config.max_incoming_per_s

    async def run(self, initial: list[str]) -> None:
        """Serve the connection until it closes (called by the HTTP handler)."""
        ex = self.ex
        if initial:
            ex.subscribe(self, initial)
        self._tasks += [asyncio.ensure_future(self._writer()),
                        asyncio.ensure_future(self._keepalive())]
        ws = self.ws
        try:
            while True:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                WSMsgType.ERROR):
                    break
                ex.stats.messages_received += 1
                if self._over_rate():
                    self.close(1008, "Too many requests")
                    continue
                if msg.type == WSMsgType.PING:
                    if not self.stalled:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    self.pongs_received += 1
                    if bytes(msg.data) in self._pings:
                        self._pings.clear()
                elif msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            self._closing = True
            self.closed = True
            ex.forget(self)
            self._wake.set()
            for t in self._tasks:
                if not t.done():
                    t.cancel()

    def _on_text(self, text: str) -> None:
        out = control.handle(text, self._streams, self.combined, self.ex.config.max_streams)
        self.control_log.append(out.request)
        if out.subscribe:
            self.ex.subscribe(self, out.subscribe)
        if out.unsubscribe:
            self.ex.unsubscribe(self, out.unsubscribe)
        if out.combined is not None:
            self.combined = out.combined
        self.replies += 1
        self.enqueue(out.reply)


def _texts(blob: bytes) -> list[str]:
    """The texts of the server frames in ``blob`` (what ``enqueue_frames`` queued)."""
    out, pos = [], 0
    while pos < len(blob):
        size, pos = blob[pos + 1] & 0x7F, pos + 2
        if size == 126:
            size, pos = int.from_bytes(blob[pos:pos + 2], "big"), pos + 2
        elif size == 127:
            size, pos = int.from_bytes(blob[pos:pos + 8], "big"), pos + 8
        out.append(blob[pos:pos + size].decode())
        pos += size
    return out
