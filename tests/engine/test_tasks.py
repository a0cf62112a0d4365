"""Owned tasks: every task has an owner that cancels it and waits until it stopped."""

from __future__ import annotations

import asyncio

from engine.tasks import TaskSet, cancel_and_wait


async def test_close_cancels_and_awaits_every_task() -> None:
    tasks = TaskSet("t")
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    for name in "abc":
        tasks.spawn(forever(name), name=name)
    await asyncio.sleep(0)
    assert len(tasks) == 3
    await tasks.close()
    assert sorted(ended) == ["a", "b", "c"] and len(tasks) == 0 and tasks.closed


async def test_finished_tasks_are_let_go_and_spawns_after_close_never_run() -> None:
    tasks = TaskSet()
    done = tasks.spawn(asyncio.sleep(0))
    await done
    await asyncio.sleep(0)
    assert len(tasks) == 0
    await tasks.close()
    ran: list[int] = []

    async def late() -> None:
        ran.append(1)

    task = tasks.spawn(late())
    await asyncio.sleep(0)
    assert task.cancelled() and ran == []


async def test_cancel_and_wait_absorbs_the_cancellation() -> None:
    task = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    await cancel_and_wait(task)
    assert task.cancelled()
    await cancel_and_wait(None)
