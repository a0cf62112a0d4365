"""Shared fixtures. Helpers (wait_until, settings_for, ...) live in tests/helpers.py and
event factories in tests/factories.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import SHARED


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path_factory: pytest.TempPathFactory,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own ~/.config/binance-live/settings.yaml must not change any test
    (subprocesses inherit the variable)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))


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
