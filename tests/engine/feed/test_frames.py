"""The sans-I/O frame reader: bytes in, messages and control frames out, no socket."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Close, Opcode

from engine.feed.frames import OP_CLOSE, OP_PING, OP_PONG, FrameReader, close_payload


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


@pytest.mark.parametrize(("wire", "code"), [
    (frame(Opcode.TEXT, b"x", mask=True), 1002),  # servers never mask
    (frame(Opcode.TEXT, b"x", rsv1=True), 1002),  # no extension negotiated
    (frame(Opcode.CONT, b"x"), 1002),  # a continuation without a message
    (frame(Opcode.PING, b"x", fin=False), 1002),  # a fragmented control frame
    (frame(Opcode.PING, b"x" * 126), 1002),  # a control frame over 125 bytes
    (bytes([0x83, 0x00]), 1002),  # opcode 3 is reserved
    (frame(Opcode.TEXT, b"a", fin=False) + frame(Opcode.TEXT, b"b"), 1002),
])
def test_protocol_violations_stop_the_stream_with_their_code(wire: bytes, code: int) -> None:
    reader = FrameReader()
    good = frame(Opcode.TEXT, b"before")
    assert reader.receive(good + wire + good) == [b"before"]  # what came first is kept
    assert reader.error is not None and reader.error.code == code
    assert reader.receive(good) == []  # a dead stream parses nothing more


def test_messages_over_the_limit_are_1009() -> None:
    reader = FrameReader(max_size=100)
    assert reader.receive(frame(Opcode.TEXT, b"x" * 101)) == []
    assert reader.error is not None and reader.error.code == 1009
    reader = FrameReader(max_size=100)
    reader.receive(frame(Opcode.TEXT, b"x" * 60, fin=False) + frame(Opcode.CONT, b"x" * 60))
    assert reader.error is not None and reader.error.code == 1009
