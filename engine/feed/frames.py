"""Server→client WebSocket frames, sans-I/O: bytes in, complete messages out.

Why our own reader: a server never masks, and we negotiate no extension, so a frame is
a 2/4/10-byte header and a payload that can be sliced straight out of the bytes a read
hands us. That costs a few integer operations per frame, against ~1 µs per frame for
websockets' generator-based parser (``bench/suite.py`` measures both). The reader knows
nothing of sockets or time: :class:`engine.feed.websocket.WsClient` feeds it what the
transport received and acts on what it returns, and tests feed it bytes directly.

Rules (RFC 6455, client side): a masked frame, reserved bits, an unknown opcode, a
fragmented or oversized control frame, or a continuation without a message is a
protocol violation (close code 1002); a message over ``max_size`` is 1009. After a
violation the stream is dead: ``error`` is set and nothing more is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_MESSAGE_BYTES = 1 << 24  # a full-book diff can exceed 1 MiB; Binance's own cap is unknown

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
_FIN_DATA = (0x81, 0x82)  # a whole text or binary message in one frame


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    code: int  # the close code to send: 1002 protocol error, 1009 too big
    reason: str


class _Violation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)  # pragma: no mutate (equivalent: never escapes receive)
        self.violation = ProtocolViolation(code, reason)


class FrameReader:
    """Parses one connection's server frames across reads.

    :meth:`receive` returns the complete data messages (text or binary payloads, in
    order). Control frames are appended to ``control`` as ``(opcode, payload)`` for the
    caller to act on (answer a ping, echo a close); the caller empties the list.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_BYTES) -> None:
        self.max_size = max_size
        self.control: list[tuple[int, bytes]] = []
        self.error: ProtocolViolation | None = None
        self._held: list[bytes] = []  # the start of an incomplete frame
        # _held_len and _need (bytes from the frame start before _held can be parsed again)
        # are read only while _held is non-empty, and set whenever it is filled.
        self._held_len = 0  # pragma: no mutate (equivalent: set before it is read)
        self._need = 0  # pragma: no mutate (equivalent: set before it is read)
        # A message's first fragment sets these two; the opcode is only tested for truth.
        self._fragments: list[bytes] = []  # pragma: no mutate (equivalent: set before read)
        self._fragments_len = 0  # pragma: no mutate (equivalent: set before it is read)
        self._fragmented_opcode = 0  # pragma: no mutate (equivalent: None is as falsy)

    def receive(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data``; on a violation, those before it."""
        if self.error is not None:
            return []
        if self._held:
            self._held.append(data)
            self._held_len += len(data)
            if self._held_len < self._need:
                return []
            data = b"".join(self._held)
            self._held.clear()
        messages: list[bytes] = []
        n = len(data)
        pos = 0
        need = 0  # pragma: no mutate (equivalent: every break sets it)
        max_size = self.max_size
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
                    length = int.from_bytes(data[pos + 2:pos + 10])  # big-endian (the default)
                    start = pos + 10
                if b1 & 0x80:
                    raise _Violation(1002, "masked frame from server")
                if length > max_size:
                    raise _Violation(1009, f"frame of {length} bytes exceeds limit")
                end = start + length
                if end > n:
                    need = end - pos
                    break
                b0 = data[pos]
                if b0 in _FIN_DATA:
                    if self._fragmented_opcode:
                        raise _Violation(1002, "new message inside a fragmented one")
                    messages.append(data[start:end])
                else:
                    self._other_frame(b0, data[start:end], messages)
                pos = end
        except _Violation as exc:
            self.error = exc.violation
            self._held.clear()
            return messages
        if pos < n:  # pragma: no mutate (equivalent: holding b"" at pos == n only costs a join)
            rest = data[pos:]  # data itself when pos is 0 (bytes slicing does not copy)
            self._held.append(rest)
            self._held_len = len(rest)
            self._need = need
        return messages

    def _other_frame(self, b0: int, payload: bytes, messages: list[bytes]) -> None:
        if b0 & 0x70:
            raise _Violation(1002, "reserved bits set (no extension negotiated)")
        fin = b0 & 0x80
        opcode = b0 & 0x0F
        if opcode >= 8:  # control frames: never fragmented, payload <= 125
            if not fin or len(payload) > 125:
                raise _Violation(1002, "invalid control frame")
            if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                raise _Violation(1002, f"unknown opcode {opcode}")
            self.control.append((opcode, payload))
            return
        if opcode in (OP_TEXT, OP_BINARY):  # the first fragment of a message
            if self._fragmented_opcode:
                raise _Violation(1002, "new message inside a fragmented one")
            self._fragmented_opcode = opcode
            self._fragments = [payload]
            self._fragments_len = len(payload)
        elif opcode == OP_CONT:
            if not self._fragmented_opcode:
                raise _Violation(1002, "continuation without a message")
            self._fragments.append(payload)
            self._fragments_len += len(payload)
            if self._fragments_len > self.max_size:
                raise _Violation(1009, "fragmented message exceeds limit")
            if fin:
                messages.append(b"".join(self._fragments))
                # The next message's first fragment sets the list and its length again.
                self._fragments = []  # pragma: no mutate (equivalent: set before it is read)
                self._fragments_len = 0  # pragma: no mutate (equivalent: set before it is read)
                self._fragmented_opcode = 0  # pragma: no mutate (equivalent: None is as falsy)
        else:
            raise _Violation(1002, f"unknown opcode {opcode}")


def close_payload(payload: bytes) -> tuple[int, str]:
    """(code, reason) of a close frame's payload; 1005 when it carries none."""
    if len(payload) >= 2:
        return payload[0] << 8 | payload[1], payload[2:].decode(errors="replace")
    return 1005, ""
