"""One WebSocket client connection on an ``asyncio.Protocol``, with its own frame reader.

The opening handshake is websockets' sans-I/O ``ClientProtocol`` (request, accept-key
and extension checks). After it, server frames are read here: a server never masks, and
we negotiate no extension, so a frame is a 2/4/10-byte header and a payload that can be
sliced straight out of the bytes the transport hands us. That costs a few integer
operations per frame, against ~1 µs per frame for websockets' generator-based parser
(``bench/suite.py`` shows both). Every complete message of one read goes to ``sink`` in
one call, stamped with one receive time. Pings are answered, pongs counted, the closing
handshake echoed; any protocol violation closes with 1002 (1009 for oversize messages).
Outgoing frames are built with websockets' ``Frame.serialize`` (masked, as RFC 6455
requires of clients).
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

MAX_MESSAGE_BYTES = 1 << 24  # a full-book diff can exceed 1 MiB; Binance's own cap is unknown
MAX_HANDSHAKE_BYTES = 1 << 16

Sink = Callable[[list[bytes], int], None]

_FIN_DATA = (0x81, 0x82)  # a whole text or binary message in one frame


class HandshakeError(ConnectionError):
    """The server answered the upgrade request with something other than 101."""


class ProtocolViolation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


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
        self._held: list[bytes] = []  # the start of an incomplete frame
        self._held_len = 0
        self._need = 0  # bytes (from the frame start) before _held can be parsed again
        self._fragments: list[bytes] = []
        self._fragments_len = 0
        self._fragmented_opcode = 0

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

    # -- frames ---------------------------------------------------------------------------

    def _read_frames(self, data: bytes) -> None:
        if self._held:
            self._held.append(data)
            self._held_len += len(data)
            if self._held_len < self._need:
                return
            data = b"".join(self._held)
            self._held.clear()
        messages: list[bytes] = []
        n = len(data)
        pos = 0
        need = 0
        try:
            while True:
                left = n - pos
                if left < 2:
                    need = 2
                    break
                b1 = data[pos + 1]
                length = b1 & 0x7F
                if length < 126:
                    start = pos + 2
                elif length == 126:
                    if left < 4:
                        need = 4
                        break
                    length = data[pos + 2] << 8 | data[pos + 3]
                    start = pos + 4
                else:
                    if left < 10:
                        need = 10
                        break
                    length = int.from_bytes(data[pos + 2:pos + 10], "big")
                    start = pos + 10
                if b1 & 0x80:
                    raise ProtocolViolation(1002, "masked frame from server")
                if length > MAX_MESSAGE_BYTES:
                    raise ProtocolViolation(1009, f"frame of {length} bytes exceeds limit")
                end = start + length
                if end > n:
                    need = end - pos
                    break
                b0 = data[pos]
                if b0 in _FIN_DATA:
                    if self._fragmented_opcode:
                        raise ProtocolViolation(1002, "new message inside a fragmented one")
                    messages.append(data[start:end])
                else:
                    self._other_frame(b0, data[start:end], messages)
                pos = end
        except ProtocolViolation as exc:
            if messages:
                self.sink(messages, time.time_ns())
            self._fail(exc.code, exc.reason)
            return
        if pos < n:
            rest = data[pos:] if pos else data
            self._held.append(rest)
            self._held_len = len(rest)
            self._need = need
        if messages:
            self.sink(messages, time.time_ns())

    def _other_frame(self, b0: int, payload: bytes, messages: list[bytes]) -> None:
        if b0 & 0x70:
            raise ProtocolViolation(1002, "reserved bits set (no extension negotiated)")
        fin = b0 & 0x80
        opcode = b0 & 0x0F
        if opcode >= 8:  # control frames: never fragmented, payload <= 125
            if not fin or len(payload) > 125:
                raise ProtocolViolation(1002, "invalid control frame")
            if opcode == 9:
                self.pings_received += 1
                self._send(Opcode.PONG, payload)
            elif opcode == 10:
                self.pongs_received += 1
            elif opcode == 8:
                self._on_close_frame(payload)
            else:
                raise ProtocolViolation(1002, f"unknown opcode {opcode}")
            return
        if opcode in (1, 2):  # the first fragment of a message
            if self._fragmented_opcode:
                raise ProtocolViolation(1002, "new message inside a fragmented one")
            self._fragmented_opcode = opcode
            self._fragments = [payload]
            self._fragments_len = len(payload)
        elif opcode == 0:
            if not self._fragmented_opcode:
                raise ProtocolViolation(1002, "continuation without a message")
            self._fragments.append(payload)
            self._fragments_len += len(payload)
            if self._fragments_len > MAX_MESSAGE_BYTES:
                raise ProtocolViolation(1009, "fragmented message exceeds limit")
            if fin:
                messages.append(b"".join(self._fragments))
                self._fragments = []
                self._fragments_len = 0
                self._fragmented_opcode = 0
        else:
            raise ProtocolViolation(1002, f"unknown opcode {opcode}")

    def _on_close_frame(self, payload: bytes) -> None:
        if len(payload) >= 2:
            code = payload[0] << 8 | payload[1]
            reason = payload[2:].decode(errors="replace")
            self.close_reason = f"server closed ({code} {reason})".strip()
        else:
            code = 1005
            self.close_reason = "server closed"
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


__all__ = ["Close", "HandshakeError", "WsClient", "open_ws"]
