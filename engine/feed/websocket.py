"""One WebSocket client connection: the thin asyncio edge around two sans-I/O cores.

The opening handshake is websockets' sans-I/O ``ClientProtocol`` (request, accept-key
and extension checks); after it, server frames go through our own
:class:`~engine.feed.frames.FrameReader`. This module only moves bytes: every complete
message of one read goes to ``sink`` in one call, stamped with one receive time; pings
are answered, pongs counted, the closing handshake echoed; a protocol violation closes
with the reader's code (1002, or 1009 for oversize messages). Outgoing frames are built
with websockets' ``Frame.serialize`` (masked, as RFC 6455 requires of clients).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from engine.errors import HandshakeError
from engine.feed.frames import (
    MAX_MESSAGE_BYTES,
    OP_PING,
    OP_PONG,
    FrameReader,
    close_payload,
)

MAX_HANDSHAKE_BYTES = 1 << 16

Sink = Callable[[list[bytes], int], None]


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
        self._open = False
        self._close_sent = False
        self._handshake = bytearray()
        self.reader = FrameReader(MAX_MESSAGE_BYTES)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        for chunk in self.protocol.data_to_send():
            transport.write(chunk)

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.bytes_received += len(data)
        if self._open:
            self._read_frames(data)
        else:
            self._read_handshake(data)

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.close_reason:
            self.close_reason = f"connection lost ({exc})" if exc else "connection closed"
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(self.close_reason))
        if not self.closed.done():
            self.closed.set_result(self.close_reason)

    # -- opening handshake (websockets sans-I/O) ------------------------------------------

    def _read_handshake(self, data: bytes) -> None:
        buf = self._handshake
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HANDSHAKE_BYTES:
                self._refuse("handshake refused: response headers too long")
            return
        head, rest = bytes(buf[:end + 4]), bytes(buf[end + 4:])
        buf.clear()
        status = head.split(b" ", 2)[1] if head.startswith(b"HTTP/") else b"?"
        if status != b"101":
            self._refuse(f"handshake refused: HTTP {status.decode(errors='replace')}")
            return
        self.protocol.receive_data(head)
        response = next((e for e in self.protocol.events_received() if type(e) is Response),
                        None)
        if response is None or self.protocol.handshake_exc is not None:
            exc = self.protocol.handshake_exc
            self._refuse(f"handshake refused: {exc or 'incomplete response'}")
            return
        self._open = True
        self.opened.set_result(None)
        if rest:
            self._read_frames(rest)

    def _refuse(self, reason: str) -> None:
        self.close_reason = reason
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(reason))
        self._abort()

    # -- frames (parsed by the sans-I/O FrameReader) -------------------------------------

    def _read_frames(self, data: bytes) -> None:
        reader = self.reader
        messages = reader.receive(data)
        if messages:
            self.sink(messages, time.time_ns())
        if reader.control:
            self._on_control()
        if reader.error is not None:
            self._fail(reader.error.code, reader.error.reason)

    def _on_control(self) -> None:
        frames, self.reader.control = self.reader.control, []
        for opcode, payload in frames:
            if opcode == OP_PING:
                self.pings_received += 1
                self._send(Opcode.PONG, payload)
            elif opcode == OP_PONG:
                self.pongs_received += 1
            else:
                self._on_close_frame(payload)

    def _on_close_frame(self, payload: bytes) -> None:
        code, reason = close_payload(payload)
        self.close_reason = f"server closed ({code} {reason})".strip() if code != 1005 \
            else "server closed"
        if not self._close_sent:
            self._close_sent = True
            self._send(Opcode.CLOSE, payload[:2] if code != 1005 else b"")
        # The server closes TCP after the closing handshake; don't wait forever.
        asyncio.get_running_loop().call_later(2.0, self._abort)

    def _fail(self, code: int, reason: str) -> None:
        self.close_reason = f"protocol error: {reason}"
        if not self._close_sent:
            self._close_sent = True
            self._send(Opcode.CLOSE, Close(code, reason[:100]).serialize())
        self._abort()

    # -- commands -----------------------------------------------------------------------

    def _send(self, opcode: Opcode, payload: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(Frame(opcode, payload).serialize(mask=True))

    def send_text(self, text: str) -> None:
        if self._open and not self._close_sent:
            self._send(Opcode.TEXT, text.encode())

    def ping(self, payload: bytes = b"") -> None:
        if self._open and not self._close_sent:
            self._send(Opcode.PING, payload)

    def close(self, code: int = 1000, reason: str = "", why: str = "") -> None:
        """Start a closing handshake; the transport is aborted if the server is silent."""
        if why:
            self.close_reason = why
        if self.transport is None or self.transport.is_closing():
            return
        if not self._open or self._close_sent:
            self._abort()
            return
        self._close_sent = True
        self._send(Opcode.CLOSE, Close(code, reason).serialize())
        asyncio.get_running_loop().call_later(1.0, self._abort)

    def abort(self, why: str) -> None:
        """Drop the TCP connection now (a dead or stalled peer gets no handshake)."""
        self.close_reason = why
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


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


__all__ = ["MAX_MESSAGE_BYTES", "HandshakeError", "Sink", "WsClient", "open_ws"]
