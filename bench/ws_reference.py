"""The reference receive path: websockets' own sans-I/O parser on an asyncio.Protocol.

This is what engine/connection.py used before it read server frames itself; the suite
keeps it as a row so the gain of the engine's frame reader is measured in the same run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri


class SansIOClient(asyncio.Protocol):
    def __init__(self, url: str, sink: Callable[[list[bytes], int], None]) -> None:
        self.sink = sink
        self.protocol = ClientProtocol(parse_uri(url), max_size=1 << 24)
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.protocol.send_request(self.protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        messages: list[bytes] = []
        for event in self.protocol.events_received():
            if type(event) is Response:
                if not self.opened.done():
                    self.opened.set_result(None)
            elif type(event) is Frame and event.opcode is Opcode.TEXT:
                messages.append(event.data)
        if messages:
            self.sink(messages, time.time_ns())
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_reference(url: str, sink: Callable[[list[bytes], int], None]) -> SansIOClient:
    uri = parse_uri(url)
    client = SansIOClient(url, sink)
    await asyncio.get_running_loop().create_connection(lambda: client, uri.host, uri.port)
    await asyncio.wait_for(client.opened, 10)
    return client
