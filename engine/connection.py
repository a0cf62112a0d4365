"""One WebSocket client connection: websockets' sans-I/O protocol on an asyncio.Protocol.

The high-level websockets API costs a task switch and a future per message; here the
bytes the transport hands us go straight into the sans-I/O parser and every complete
text message of that read is handed to ``sink`` in one call, stamped with one receive
time. Pings are answered by the protocol itself; this class only flushes its output.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Close, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

MAX_MESSAGE_BYTES = 1 << 24  # a full-book diff can exceed 1 MiB; Binance's own cap is unknown

Sink = Callable[[list[bytes], int], None]


class HandshakeError(ConnectionError):
    """The server answered the upgrade request with something other than 101."""


class WsClient(asyncio.Protocol):
    """Transport adapter; create with :func:`open_ws`."""

    def __init__(self, url: str, sink: Sink) -> None:
        self.url = url
        self.sink = sink
        self.protocol = ClientProtocol(parse_uri(url), max_size=MAX_MESSAGE_BYTES)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.last_rx = time.monotonic()
        self.bytes_received = 0
        self.pings_received = 0
        self.pongs_received = 0
        self.close_reason = ""
        self._fragments: list[bytes] = []

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.bytes_received += len(data)
        protocol = self.protocol
        protocol.receive_data(data)
        messages: list[bytes] = []
        for event in protocol.events_received():
            if type(event) is Response:
                self._handshake_done(event)
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if event.fin:
                    messages.append(event.data)
                else:
                    self._fragments = [event.data]
            elif opcode is Opcode.CONT:
                self._fragments.append(event.data)
                if event.fin:
                    messages.append(b"".join(self._fragments))
                    self._fragments = []
            elif opcode is Opcode.PING:
                self.pings_received += 1
            elif opcode is Opcode.PONG:
                self.pongs_received += 1
            elif opcode is Opcode.CLOSE:
                rcvd = protocol.close_rcvd
                self.close_reason = f"server closed ({rcvd.code} {rcvd.reason})".strip() \
                    if rcvd else "server closed"
        if messages:
            self.sink(messages, time.time_ns())
        self._flush()
        if protocol.close_expected() and self.transport is not None:
            # The server closes TCP after the closing handshake; don't wait forever.
            asyncio.get_running_loop().call_later(2.0, self._abort)

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.close_reason:
            self.close_reason = f"connection lost ({exc})" if exc else "connection closed"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(self.close_reason))
        if not self.closed.done():
            self.closed.set_result(self.close_reason)

    # -- commands -----------------------------------------------------------------------

    def _handshake_done(self, response: Response) -> None:
        if self.opened.done():
            return
        if self.protocol.handshake_exc is not None or response.status_code != 101:
            reason = f"handshake refused: HTTP {response.status_code}"
            self.close_reason = reason
            self.opened.set_exception(HandshakeError(reason))
            self._abort()
        else:
            self.opened.set_result(None)

    def send_text(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self._flush()

    def ping(self, payload: bytes = b"") -> None:
        self.protocol.send_ping(payload)
        self._flush()

    def close(self, code: int = 1000, reason: str = "", why: str = "") -> None:
        """Start a closing handshake; the transport is aborted if the server is silent."""
        if why:
            self.close_reason = why
        if self.transport is None or self.transport.is_closing():
            return
        try:
            self.protocol.send_close(code, reason)
        except Exception:  # noqa: BLE001 - already closing or never opened
            self._abort()
            return
        self._flush()
        asyncio.get_running_loop().call_later(1.0, self._abort)

    def abort(self, why: str) -> None:
        """Drop the TCP connection now (a dead or stalled peer gets no handshake)."""
        self.close_reason = why
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for chunk in self.protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif self.protocol.close_expected() and transport.can_write_eof():
                transport.write_eof()


async def open_ws(url: str, sink: Sink, timeout: float) -> WsClient:
    """Connect, complete the WebSocket handshake, and return the live client."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    ctx = ssl.create_default_context() if uri.secure else None
    client = WsClient(url, sink)
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: client, uri.host, uri.port, ssl=ctx,
                                         server_hostname=uri.host if ctx else None)
            await client.opened
    except BaseException:
        client.abort("connect failed")
        raise
    return client


__all__ = ["Close", "HandshakeError", "WsClient", "open_ws"]
