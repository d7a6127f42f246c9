"""cancel_and_wait: every task ends, even one whose first cancellation was dropped (as
Python 3.11's asyncio.wait_for drops one that arrives with its awaitable's result)."""

from __future__ import annotations

import asyncio

import pytest

from raftka.common import tasks
from raftka.common.tasks import cancel_and_wait


def test_a_task_that_drops_its_first_cancellation_is_cancelled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tasks, "RECANCEL_AFTER_S", 0.01)
    rounds: list[str] = []

    async def loop_that_drops_one_cancel() -> None:
        dropped = False
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if dropped:
                    raise
                dropped = True  # what wait_for does when the result is there too
                rounds.append("dropped")

    async def main() -> None:
        task = asyncio.create_task(loop_that_drops_one_cancel())
        await asyncio.sleep(0)  # let it start waiting
        await asyncio.wait_for(cancel_and_wait([task]), 5)
        assert task.cancelled()

    asyncio.run(main())
    assert rounds == ["dropped"]


def test_a_task_that_failed_raises_its_error_and_none_is_skipped() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        task = asyncio.create_task(fails())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="boom"):
            await cancel_and_wait([None, task])

    asyncio.run(main())
