"""Fault injection hooks (``LocalExchange.faults``) for client resilience tests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .server import LocalExchange

_MALFORMED = (
    '{"stream":"btcusdt@trade","data":{"e":"trade","E":17231612',
    "this is not json",
    '{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":',
    "]}",
)


class Faults:
    """Each hook acts on the connections open at the time of the call."""

    def __init__(self, ex: LocalExchange) -> None:
        self.ex = ex
        self.rest_delay_s = 0.0

    def slow_rest(self, seconds: float) -> None:
        """Deliver every REST reply `seconds` late (0 restores). The body is computed when
        the request arrives, so a depth snapshot is older than the diffs sent meanwhile:
        the bridging diff reaches the client *before* the snapshot, as in real data."""
        self.rest_delay_s = max(0.0, seconds)

    def corrupt_next_diff(self, symbol: str) -> None:
        """The next diff-depth event of `symbol` (every speed) silently omits one changed
        level while its ids stay contiguous: a wrong book no sequence check can see."""
        self.ex.market(symbol).corrupt_next_diff()

    def drop_all(self) -> int:
        """Abort the TCP connection of every WebSocket (no close frame). Returns the count."""
        conns = self.ex.connections
        for c in conns:
            c.abort()
        return len(conns)

    def close_all(self, code: int = 1001, reason: str = "") -> int:
        """Close every WebSocket with a proper close frame."""
        conns = self.ex.connections
        for c in conns:
            c.close(code, reason)
        return len(conns)

    def stall(self, on: bool = True) -> None:
        """Freeze (or unfreeze) existing connections: sockets stay open, nothing is sent,
        not even pings; events published meanwhile are not delivered to them."""
        for c in self.ex.connections:
            c.stalled = on
            c._wake.set()

    def send_malformed(self, n: int = 1) -> None:
        """Send `n` non-JSON / truncated text frames to every connection."""
        for c in self.ex.connections:
            for i in range(n):
                c.enqueue(_MALFORMED[i % len(_MALFORMED)])

    def skip_depth_id(self, symbol: str) -> None:
        """The next diff-depth event of `symbol` (every speed) has U = previous u + 2."""
        self.ex.market(symbol).skip_update_id()

    def server_shutdown(self, close_after_s: float = 1.0, code: int = 1001) -> None:
        """Send serverShutdown to every connection, then close them after the delay."""
        conns = self.ex.connections
        for c in conns:
            c.send_shutdown_notice()
        loop = asyncio.get_running_loop()
        for c in conns:
            loop.call_later(close_after_s, c.close, code, "Server shutdown")
