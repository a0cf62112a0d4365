"""The one error hierarchy: everything the engine raises on purpose is an ``EngineError``.

Why one root: a caller (the CLI, the TUI, a user's script) can catch ``EngineError`` and
show ``str(exc)`` — always one line for a person — while a bug (any other exception)
still surfaces as a traceback. Transport and decoding errors of libraries (aiohttp,
msgspec, OSError) are wrapped once, where they happen (``engine.rest.client``), so no
other module needs to know which library raised what.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises on purpose; ``str()`` is one line."""


class ConfigError(EngineError, ValueError):
    """A bad setting: names the key, the bad value and what is allowed."""


class UnknownSymbols(EngineError):
    """Symbols the exchange does not list (exchangeInfo)."""

    def __init__(self, symbols: list[str]) -> None:
        super().__init__(", ".join(symbols))
        self.symbols = symbols


class ReplayError(EngineError):
    """A recording that cannot be replayed."""


class ProtocolError(EngineError, ConnectionError):
    """The WebSocket peer broke the protocol (a refused handshake, a bad frame)."""


class HandshakeError(ProtocolError):
    """The server answered the upgrade request with something other than 101."""


# -- REST -----------------------------------------------------------------------------


class RestError(EngineError):
    """A REST call that produced no usable reply.

    ``retryable``: trying again later may succeed (no reply at all, 429/418 after their
    pause, a 5xx); otherwise the request itself is wrong or the reply unusable.
    """

    @property
    def retryable(self) -> bool:
        return False


class RestUnavailable(RestError):
    """No reply: the connection failed, was reset, or timed out.

    ``sent`` is False when the request never left (connect failed): it cost no weight.
    """

    def __init__(self, msg: str, *, sent: bool = True) -> None:
        super().__init__(msg)
        self.sent = sent

    @property
    def retryable(self) -> bool:
        return True


class RestBadReply(RestError):
    """A 200 reply whose body is not what the endpoint returns."""


class RestRejected(RestError):
    """An HTTP error status, with Binance's error ``code`` when the body carried one."""

    RETRY_STATUS = frozenset({418, 429, 500, 502, 503, 504})

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        super().__init__(f"HTTP {status}" + (f" {code}" if code is not None else "") + f": {msg}")
        self.status = status
        self.code = code
        self.msg = msg

    @property
    def retryable(self) -> bool:
        return self.status in self.RETRY_STATUS


class RateLimited(RestRejected):
    """429: over the request weight; every REST call waits ``retry_after_s``."""

    def __init__(self, status: int, code: int | None, msg: str, retry_after_s: float) -> None:
        super().__init__(status, code, msg)
        self.retry_after_s = retry_after_s


class Banned(RateLimited):
    """418: the IP is banned for ``retry_after_s`` (429s were ignored)."""


__all__ = [
    "Banned",
    "ConfigError",
    "EngineError",
    "HandshakeError",
    "ProtocolError",
    "RateLimited",
    "ReplayError",
    "RestBadReply",
    "RestError",
    "RestRejected",
    "RestUnavailable",
    "UnknownSymbols",
]
