"""The receive path: frames of one read → decode → id gate → bus, in one call.

Every connection's reads end here (``engine.feed.link`` wraps it per connection), and
benchmarks build a :class:`Receiver` directly, so what they measure is exactly the
production path. Per read: one ``decode_batch`` (typed events, control replies set
aside), one ``IdGate.filter`` (duplicates dropped, gaps ledgered), one
``Bus.publish_many``. A decoder or gate bug is counted (``errors``) and logged once per
exception type; it never stops the feed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.bus import Bus
from engine.events import ServerShutdown
from engine.feed.decode import FrameDecoder
from engine.feed.gate import IdGate

log = logging.getLogger("binance_live.receiver")

RawTap = Callable[[list[bytes], int, int], None]  # (frames, recv_ns, conn_id)


class Receiver:
    def __init__(self, decoder: FrameDecoder, gate: IdGate, bus: Bus) -> None:
        self.decoder = decoder
        self.gate = gate
        self.bus = bus
        self.raw_tap: RawTap | None = None  # the recorder's raw frames (storage.raw)
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self._decode = decoder.decode_batch
        self._filter = gate.filter
        self._publish = bus.publish_many

    def receive(self, frames: list[bytes], recv_ns: int, conn_id: int,
                special: list[Any]) -> int:
        """Deliver one read's frames; returns how many market events they held.

        Control replies and ``ServerShutdown`` are appended to ``special`` for the
        connection to act on (``ServerShutdown`` is published too).
        """
        if self.raw_tap is not None:
            self.raw_tap(frames, recv_ns, conn_id)
        events: list[Any] = []
        try:
            self._decode(frames, recv_ns, conn_id, events, special)
        except Exception as exc:  # noqa: BLE001 - a decoder bug: count it, keep the feed
            self._count(exc, "decoding")
        if not events:
            return 0
        try:
            out: list[Any] = []
            self._filter(events, out)
            if out:
                self._publish(out)
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the socket
            self._count(exc, "publishing")
        if special:
            return len(events) - sum(1 for e in special if type(e) is ServerShutdown)
        return len(events)

    def _count(self, exc: Exception, stage: str) -> None:
        self.errors += 1
        kind = f"{stage}: {type(exc).__name__}"
        seen = self.error_kinds.get(kind, 0)
        self.error_kinds[kind] = seen + 1
        if not seen:
            log.error("%s failed (logged once per kind, counted after)", stage, exc_info=exc)
