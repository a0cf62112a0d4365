from pathlib import Path
from engine.config import load_settings
from engine.replay import ReplaySpec
from tests.conftest import wait_until
from tests.test_replay import second_of_events

async def test_fail_inside(tmp_path: Path) -> None:
    from tui.app import MonitorApp
    second_of_events(tmp_path, n=21)
    app = MonitorApp(load_settings(None, [("storage.enabled", False)]), replay=ReplaySpec(tmp_path, speed=0))
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_until(lambda: app.engine is not None and app.engine.replay is not None
                         and app.engine.replay.done.is_set(), 10, "the replay to finish")
        await pilot.pause(0.2)
        assert False, "boom"

async def test_fail_inside_demo() -> None:
    from tui.app import MonitorApp
    app = MonitorApp(load_settings(None, [("storage.enabled", False)]), demo=True)
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_until(lambda: app.engine is not None, 10, "x")
        await pilot.pause(0.2)
        assert False, "boom"
