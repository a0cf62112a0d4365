"""The sans-I/O frame reader: bytes in, messages and control frames out, no socket."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Close, Opcode

from engine.feed.frames import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameReader,
    ProtocolViolation,
    close_payload,
)


def frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False,
          mask: bool = False) -> bytes:
    """One frame as RFC 6455 lays it out (built by hand: bad frames too)."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask:
        key = b"\x01\x02\x03\x04"
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def test_every_length_form_in_one_read_and_byte_by_byte() -> None:
    payloads = [b"x" * n for n in (0, 1, 125, 126, 127, 65535, 65536, 70_000)]
    wire = b"".join(frame(Opcode.TEXT, p) for p in payloads)
    assert FrameReader().receive(wire) == payloads
    reader = FrameReader()
    got = [m for i in range(len(wire)) for m in reader.receive(wire[i:i + 1])]
    assert got == payloads and reader.error is None


def test_a_fragmented_message_is_reassembled_around_a_ping() -> None:
    reader = FrameReader()
    wire = (frame(Opcode.TEXT, b"ab", fin=False) + frame(Opcode.PING, b"p")
            + frame(Opcode.CONT, b"cd", fin=False) + frame(Opcode.CONT, b"e"))
    assert reader.receive(wire) == [b"abcde"]
    assert reader.control == [(OP_PING, b"p")]  # the caller answers it


def test_control_frames_are_handed_over_in_order() -> None:
    reader = FrameReader()
    close = Close(1001, "bye").serialize()
    msgs = reader.receive(frame(Opcode.PONG, b"1") + frame(Opcode.TEXT, b"m")
                          + frame(Opcode.CLOSE, close))
    assert msgs == [b"m"]
    assert reader.control == [(OP_PONG, b"1"), (OP_CLOSE, close)]
    assert close_payload(close) == (1001, "bye") and close_payload(b"") == (1005, "")


@pytest.mark.parametrize(("wire", "code", "reason"), [
    (frame(Opcode.TEXT, b"x", mask=True), 1002, "masked frame from server"),
    (frame(Opcode.TEXT, b"x", rsv1=True), 1002, "reserved bits set (no extension negotiated)"),
    (frame(Opcode.CONT, b"x"), 1002, "continuation without a message"),
    (frame(Opcode.PING, b"x", fin=False), 1002, "invalid control frame"),  # fragmented
    (frame(Opcode.PING, b"x" * 126), 1002, "invalid control frame"),  # over 125 bytes
    (bytes([0x83, 0x00]), 1002, "unknown opcode 3"),  # reserved data opcode
    (bytes([0x8B, 0x00]), 1002, "unknown opcode 11"),  # reserved control opcode
    (frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.TEXT, b"b"), 1002,
     "new message inside a fragmented one"),
    (frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.BINARY, b"b", fin=False), 1002,
     "new message inside a fragmented one"),
])
def test_protocol_violations_stop_the_stream_with_their_code(wire: bytes, code: int,
                                                             reason: str) -> None:
    """The code and reason go into the close frame sent back and the close_reason."""
    reader = FrameReader()
    good = frame(Opcode.TEXT, b"before")
    assert reader.receive(good + wire + good) == [b"before"]  # what came first is kept
    assert reader.error == ProtocolViolation(code, reason)
    assert reader.receive(good) == []  # a dead stream parses nothing more


def test_messages_over_the_limit_are_1009_and_at_the_limit_pass() -> None:
    reader = FrameReader(max_size=100)
    assert reader.receive(frame(Opcode.TEXT, b"x" * 100)) == [b"x" * 100]
    assert reader.receive(frame(Opcode.TEXT, b"x" * 101)) == []
    assert reader.error == ProtocolViolation(1009, "frame of 101 bytes exceeds limit")
    reader = FrameReader(max_size=100)
    assert reader.receive(frame(Opcode.TEXT, b"x" * 60, fin=False)
                          + frame(Opcode.CONT, b"y" * 40)) == [b"x" * 60 + b"y" * 40]
    reader.receive(frame(Opcode.TEXT, b"x" * 60, fin=False) + frame(Opcode.CONT, b"x" * 41))
    assert reader.error == ProtocolViolation(1009, "fragmented message exceeds limit")


def test_an_absurd_announced_length_is_refused_before_its_bytes_arrive() -> None:
    """All eight bytes of the 64-bit length count, the most significant one too."""
    reader = FrameReader()
    length = (1 << 56) + 5
    assert reader.receive(bytes([0x81, 127]) + length.to_bytes(8, "big") + b"x" * 5) == []
    assert reader.error == ProtocolViolation(1009, "frame of 72057594037927941 bytes exceeds "
                                                   "limit")


def test_a_control_frame_of_125_bytes_is_valid() -> None:
    reader = FrameReader()
    assert reader.receive(frame(Opcode.PING, b"p" * 125) + frame(Opcode.TEXT, b"m")) == [b"m"]
    assert reader.control == [(OP_PING, b"p" * 125)] and reader.error is None


def test_messages_after_a_fragmented_one_start_afresh() -> None:
    reader = FrameReader()
    wire = (frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.CONT, b"b")
            + frame(Opcode.TEXT, b"c")
            + frame(Opcode.BINARY, b"d", fin=False) + frame(Opcode.CONT, b"e"))
    assert reader.receive(wire) == [b"ab", b"c", b"de"] and reader.error is None


def header_form(opcode: int, payload: bytes, form: int) -> bytes:
    """A frame whose length is written in the 2- (form 0), 4- (126) or 10-byte (127)
    header, minimal or not: RFC 6455 asks servers for the minimal form, but a longer one
    still says exactly where the frame ends, and the reader (like websockets') takes it."""
    n = len(payload)
    if form == 0:
        return bytes([0x80 | opcode, n]) + payload
    if form == 126:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", n) + payload
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", n) + payload


# Frames that end exactly where a header ends (empty payloads, in every length form) and
# longer ones: each must come out of the very read that brings its last byte.
FRAMES = [header_form(Opcode.TEXT, b"", 0), header_form(Opcode.TEXT, b"", 126),
          header_form(Opcode.BINARY, b"", 127), header_form(Opcode.TEXT, b"abc", 0),
          header_form(Opcode.TEXT, b"q" * 130, 126), header_form(Opcode.TEXT, b"z" * 3, 127),
          header_form(Opcode.TEXT, b"w" * 200, 126), header_form(Opcode.TEXT, b"", 0)]


def payload_of(f: bytes) -> bytes:
    return f[{126: 4, 127: 10}.get(f[1], 2):]


def test_each_frame_comes_out_of_the_read_that_completes_it_byte_by_byte() -> None:
    reader = FrameReader()
    for f in FRAMES:
        for i in range(len(f) - 1):
            assert reader.receive(f[i:i + 1]) == [], (f[:2], i)
        assert reader.receive(f[-1:]) == [payload_of(f)], f[:2]
    assert reader.error is None


def test_each_frame_comes_out_of_the_read_that_completes_it_at_any_split() -> None:
    wire = b"".join(FRAMES)
    ends = [sum(len(f) for f in FRAMES[:k + 1]) for k in range(len(FRAMES))]
    payloads = [payload_of(f) for f in FRAMES]
    for cut in range(len(wire) + 1):
        reader = FrameReader()
        first = reader.receive(wire[:cut])
        done = sum(end <= cut for end in ends)
        assert first == payloads[:done], cut
        assert reader.receive(wire[cut:]) == payloads[done:], cut


def test_close_payloads() -> None:
    assert close_payload(b"\x03\xe8") == (1000, "")  # a code and no reason
    assert close_payload(b"\x03\xe9a\xffb") == (1001, "a\ufffdb")  # bad UTF-8 is replaced
    assert close_payload(b"\x03") == (1005, "")  # too short to hold a code
