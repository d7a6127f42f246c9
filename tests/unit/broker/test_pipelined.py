"""in_order: requests worked on several at a time, answers in request order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from raftka.broker.pipelined import in_order
from tests.conditions import until


async def _requests(items: list[float]) -> AsyncIterator[float]:
    for item in items:
        yield item


def test_answers_come_in_request_order_while_work_overlaps() -> None:
    async def main() -> None:
        done = {i: asyncio.Event() for i in range(6)}
        running: set[float] = set()
        peak = 0

        async def handle(item: float) -> float:
            nonlocal peak
            running.add(item)
            peak = max(peak, len(running))
            await done[int(item)].wait()
            running.discard(item)
            return item

        answers: list[float] = []

        async def consume() -> None:
            async for answer in in_order(_requests([0, 1, 2, 3, 4, 5]), handle, max_in_flight=3):
                answers.append(answer)

        task = asyncio.create_task(consume())
        await until(lambda: running == {0, 1, 2}, what="three requests started")
        done[2].set()  # finishes first, but waits for 0 and 1 to be answered
        done[1].set()
        await until(lambda: 1 not in running and 2 not in running, what="1 and 2 done")
        assert answers == [] and 3 not in running, "no answer before 0's, no fourth request"
        done[0].set()
        await until(lambda: answers == [0, 1, 2], what="0, 1 and 2 answered in order")
        for i in (5, 4, 3):
            done[i].set()
        await asyncio.wait_for(task, 5)
        assert answers == [0, 1, 2, 3, 4, 5]
        assert peak == 3

    asyncio.run(asyncio.wait_for(main(), 10))


def test_an_error_ends_the_answers_and_cancels_the_work_in_flight() -> None:
    async def main() -> None:
        cancelled: list[float] = []

        async def handle(item: float) -> float:
            if item == 1:
                raise ValueError("bad request 1")
            try:
                await asyncio.Event().wait() if item > 1 else None
            except asyncio.CancelledError:
                cancelled.append(item)
                raise
            return item

        seen: list[float] = []
        with pytest.raises(ValueError, match="bad request 1"):
            async for answer in in_order(_requests([0, 1, 2, 3]), handle, max_in_flight=4):
                seen.append(answer)
        assert seen == [0]
        await until(lambda: sorted(cancelled) == [2, 3], what="2 and 3 cancelled")

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_bound_below_one_is_refused() -> None:
    async def main() -> None:
        async def handle(item: float) -> float:
            return item

        with pytest.raises(ValueError, match="at least 1"):
            async for _ in in_order(_requests([1]), handle, max_in_flight=0):
                pass

    asyncio.run(main())
