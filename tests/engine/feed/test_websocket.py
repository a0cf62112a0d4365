"""The client's own frame reader (engine/feed/websocket.py), byte by byte, without sockets."""

from __future__ import annotations

import random

import pytest
from websockets.frames import Close, Frame, Opcode

from engine.feed.websocket import MAX_MESSAGE_BYTES, WsClient


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


def server_frame(opcode: Opcode, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    wire = bytearray(Frame(opcode, payload).serialize(mask=False))  # checks would refuse
    if not fin:
        wire[0] &= 0x7F
    if rsv1:
        wire[0] |= 0x40
    return bytes(wire)


def client_frames(transport: FakeTransport) -> list[Frame]:
    """Parse what the client wrote (masked frames) back into frames."""
    from websockets.streams import StreamReader

    reader = StreamReader()
    for chunk in transport.written:
        reader.feed_data(chunk)
    reader.feed_eof()
    out = []
    while True:
        gen = Frame.parse(reader.read_exact, mask=True)
        try:
            next(gen)
        except StopIteration as stop:
            out.append(stop.value)
        except EOFError:
            return out


def open_client() -> tuple[WsClient, FakeTransport, list[bytes]]:
    received: list[bytes] = []
    client = WsClient("ws://127.0.0.1:1/stream", lambda msgs, ns: received.extend(msgs))
    transport = FakeTransport()
    client.transport = transport  # type: ignore[assignment]
    client._open = True  # noqa: SLF001 - skip the handshake, tested over sockets elsewhere
    return client, transport, received


def sizes() -> list[int]:
    return [0, 1, 125, 126, 127, 65535, 65536, 70_000]


async def test_frames_of_every_length_form_split_at_every_boundary() -> None:
    payloads = [bytes([65 + i % 26]) * n for i, n in enumerate(sizes())]
    wire = b"".join(server_frame(Opcode.TEXT, p) for p in payloads)
    rng = random.Random(7)
    for chunking in ("one", "bytes-head", "random"):
        client, _, received = open_client()
        if chunking == "one":
            client.data_received(wire)
        elif chunking == "bytes-head":  # the first 300 bytes one at a time, then the rest
            for i in range(300):
                client.data_received(wire[i:i + 1])
            client.data_received(wire[300:])
        else:
            pos = 0
            while pos < len(wire):
                step = rng.randint(1, 9000)
                client.data_received(wire[pos:pos + step])
                pos += step
        assert received == payloads, chunking


async def test_fragmented_message_with_interleaved_ping_is_reassembled_and_ponged() -> None:
    client, transport, received = open_client()
    wire = (server_frame(Opcode.TEXT, b'{"a":', fin=False)
            + server_frame(Opcode.PING, b"hi")
            + server_frame(Opcode.CONT, b'1', fin=False)
            + server_frame(Opcode.CONT, b'}', fin=True)
            + server_frame(Opcode.PONG, b"")
            + server_frame(Opcode.BINARY, b"x"))
    for i in range(len(wire)):
        client.data_received(wire[i:i + 1])
    assert received == [b'{"a":1}', b"x"]
    assert client.pings_received == 1 and client.pongs_received == 1
    [pong] = client_frames(transport)
    assert pong.opcode is Opcode.PONG and pong.data == b"hi"


async def test_server_close_is_echoed_and_reason_kept() -> None:
    client, transport, received = open_client()
    client.data_received(server_frame(Opcode.TEXT, b"last")
                         + server_frame(Opcode.CLOSE, Close(1001, "going away").serialize()))
    assert received == [b"last"]
    assert client.close_reason == "server closed (1001 going away)"
    [echo] = client_frames(transport)
    assert echo.opcode is Opcode.CLOSE and Close.parse(echo.data).code == 1001


@pytest.mark.parametrize(("wire", "code"), [
    (Frame(Opcode.TEXT, b"x").serialize(mask=True), 1002),  # servers never mask
    (server_frame(Opcode.TEXT, b"x", rsv1=True), 1002),  # no extension negotiated
    (server_frame(Opcode.CONT, b"x"), 1002),  # continuation without a message
    (server_frame(Opcode.PING, b"x", fin=False), 1002),  # fragmented control frame
    (bytes([0x83, 0]), 1002),  # reserved opcode
    (bytes([0x81, 127]) + (MAX_MESSAGE_BYTES + 1).to_bytes(8, "big"), 1009),
])
async def test_protocol_violations_close_with_the_right_code(wire: bytes, code: int) -> None:
    client, transport, received = open_client()
    client.data_received(server_frame(Opcode.TEXT, b"ok") + wire)
    assert received == [b"ok"]  # what came before the violation is delivered
    assert transport.aborted and client.close_reason.startswith("protocol error")
    [close] = client_frames(transport)
    assert close.opcode is Opcode.CLOSE and Close.parse(close.data).code == code


async def test_commands_write_masked_frames_and_stop_after_close() -> None:
    client, transport, _ = open_client()
    client.send_text('{"method":"LIST_SUBSCRIPTIONS","id":1}')
    client.ping()
    transport.aborted = False
    frames = client_frames(transport)
    assert [f.opcode for f in frames] == [Opcode.TEXT, Opcode.PING]
    assert all(chunk[1] & 0x80 for chunk in transport.written)  # mask bit set
    client._close_sent = True  # noqa: SLF001
    client.send_text("late")
    assert len(transport.written) == 2
