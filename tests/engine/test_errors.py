"""One error hierarchy: everything the engine raises on purpose is an EngineError, and the
REST client turns every transport or decoding failure into one of its kinds, once."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web

from engine import errors
from engine.binance.rest_rows import decode_server_time
from engine.errors import (
    Banned,
    EngineError,
    RateLimited,
    RestBadReply,
    RestError,
    RestRejected,
    RestUnavailable,
)
from engine.rest.client import RestClient


def test_every_error_is_an_engine_error() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), EngineError), name
    assert issubclass(errors.ConfigError, ValueError)  # callers catching ValueError still do
    assert issubclass(errors.HandshakeError, ConnectionError)


def test_retryable_is_decided_by_the_error() -> None:
    assert RestUnavailable("timeout").retryable
    assert RestRejected(503, -1008, "busy").retryable and RateLimited(429, -1003, "", 1).retryable
    assert not RestRejected(400, -1100, "bad param").retryable
    assert not RestBadReply("x").retryable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(handler: web.RequestHandler) -> web.AppRunner:
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


async def test_what_a_caller_sees_is_always_a_rest_error() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/slow":
            await asyncio.sleep(2)
        if path == "/garbage":
            return web.Response(body=b"<html>", content_type="text/html")
        if path == "/limited":
            return web.json_response({"code": -1003, "msg": "too much"}, status=429,
                                     headers={"Retry-After": "0"})
        if path == "/banned":
            return web.json_response({"code": -1003, "msg": "banned"}, status=418,
                                     headers={"Retry-After": "0"})
        if path == "/gateway":
            return web.Response(status=502, text="<html>bad gateway</html>")
        return web.json_response({"serverTime": 1})

    runner = await serve(handler)
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    rest = RestClient(base, timeout_s=0.3)
    try:
        assert await rest.fetch("/ok", None, decode_server_time) == 1
        with pytest.raises(RestUnavailable, match=r"no reply within 0\.3s") as slow:
            await rest.get("/slow")
        assert slow.value.sent
        with pytest.raises(RestBadReply, match="/garbage: bad reply"):
            await rest.fetch("/garbage", None, decode_server_time)
        with pytest.raises(RateLimited) as limited:
            await rest.get("/limited")
        assert (limited.value.status, limited.value.code) == (429, -1003)
        with pytest.raises(Banned):
            await rest.get("/banned")
        with pytest.raises(RestRejected, match="HTTP 502: <html>bad gateway") as gw:
            await rest.get("/gateway")
        assert gw.value.code is None and gw.value.retryable
        assert rest.stats.errors == 5
    finally:
        await rest.close()
        await runner.cleanup()
    nobody = RestClient(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(RestError) as refused:
        await nobody.get("/api/v3/time")
    assert isinstance(refused.value, RestUnavailable) and not refused.value.sent
    assert nobody.budget.used == 0  # it never reached a server: no weight spent
    await nobody.close()
