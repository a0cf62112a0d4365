"""Shared helpers: condition waits (never bare sleeps) and settings aimed at a local exchange."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.config.settings import Settings, load_settings

SHARED = Path(__file__).resolve().parents[2] / "shared"


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def settings_for(ex: Any, *extra: tuple[str, Any], **conn: Any) -> Settings:
    """Default settings pointed at a local exchange, with fast reconnect timings."""
    overrides: list[tuple[str, Any]] = [
        ("connection.ws_url", ex.ws_url), ("connection.rest_url", ex.rest_url),
        ("connection.backoff_initial_s", 0.02), ("connection.backoff_max_s", 0.2),
        ("storage.enabled", False),
    ]
    overrides += [(f"connection.{k}", v) for k, v in conn.items()]
    overrides += list(extra)
    return load_settings(None, overrides)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (real recordings) is not available")
    return SHARED


@pytest.fixture
async def http() -> Any:
    """A raw aiohttp client session, for tests that speak to the exchange directly."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        yield session
