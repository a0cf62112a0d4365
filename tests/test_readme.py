"""The README's custom-consumer example runs as written (aimed at the local exchange)."""

from __future__ import annotations

import re

from engine.exchange import ExchangeConfig, LocalExchange
from tests.helpers import ROOT

README = ROOT / "README.md"


def snippet() -> str:
    text = README.read_text()
    match = re.search(r"### Plugging in your own consumer\n\n```python\n(.*?)```", text, re.S)
    assert match, "README lost its consumer example"
    return match.group(1)


def test_consumer_example_is_short() -> None:
    assert len(snippet().strip().splitlines()) <= 14


async def test_consumer_example_runs(capsys) -> None:
    code = snippet()
    live = 'load_settings(overrides=[("symbols", ["BTCUSDT"])])'
    assert live in code and "asyncio.sleep(60)" in code and code.rstrip().endswith(
        "asyncio.run(main())")
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=200)) as ex:
        local = (f'load_settings(overrides=[("symbols", ["BTCUSDT"]), '
                 f'("connection.ws_url", "{ex.ws_url}"), ("storage.enabled", False)])')
        code = code.replace(live, local).replace("asyncio.sleep(60)", "asyncio.sleep(1.5)")
        code = code.replace("asyncio.run(main())", "")
        scope: dict[str, object] = {}
        exec(compile(code, str(README), "exec"), scope)  # noqa: S102 - our own README
        await scope["main"]()  # type: ignore[operator]
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("trade BTCUSDT ") for line in out)
    assert any(line.startswith("bookTicker BTCUSDT ") for line in out)
