"""The broker's producer-id blocks: ids handed out in order, a new block when one runs out,
one shared request for concurrent callers, failures reported as retriable."""

from __future__ import annotations

import asyncio

import pytest

from raftka.broker.producers.id_blocks import ProducerIdBlock, ProducerIdManager
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    RequestTimedOutError,
    StaleBrokerEpochError,
)


class FakeController:
    """Hands out blocks of ``size`` ids like the controller (increasing, never overlapping),
    when released (``gate``), or fails with the queued errors first."""

    def __init__(self, size: int = 3) -> None:
        self.size = size
        self.next = 0
        self.calls = 0
        self.errors: list[Exception] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.served = asyncio.Event()
        self.called = asyncio.Event()

    async def allocate(self) -> ProducerIdBlock:
        self.calls += 1
        self.called.set()
        await self.gate.wait()
        if self.errors:
            raise self.errors.pop(0)
        block = ProducerIdBlock(self.next, self.size)
        self.next += self.size
        self.served.set()
        return block


def in_flight(manager: ProducerIdManager) -> bool:
    return manager.fetching


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_ids_come_from_one_block_then_the_next() -> None:
    async def main() -> None:
        controller = FakeController(size=3)
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        assert [await manager.next_id() for _ in range(3)] == [0, 1, 2]
        assert controller.calls == 1 and manager.remaining == 0
        assert [await manager.next_id() for _ in range(4)] == [3, 4, 5, 6]
        assert controller.calls == 3 and manager.remaining == 2

    run(main())


def test_concurrent_callers_share_one_request() -> None:
    async def main() -> None:
        controller = FakeController(size=100)
        controller.gate.clear()
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        waiting = [asyncio.ensure_future(manager.next_id()) for _ in range(10)]
        await controller.called.wait()  # every caller is waiting on the (blocked) request
        assert controller.calls == 1
        controller.gate.set()
        ids = await asyncio.gather(*waiting)
        assert sorted(ids) == list(range(10))
        assert controller.calls == 1 and manager.remaining == 90

    run(main())


def test_concurrent_callers_beyond_a_block_get_the_next_block() -> None:
    async def main() -> None:
        controller = FakeController(size=4)
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        ids = await asyncio.gather(*(manager.next_id() for _ in range(10)))
        assert sorted(ids) == list(range(10))  # distinct, none skipped, none from a stale block
        assert controller.calls == 3

    run(main())


def test_a_failed_request_fails_its_waiters_retriably_and_the_next_call_asks_again() -> None:
    async def main() -> None:
        controller = FakeController()
        controller.errors = [RequestTimedOutError("no active controller answered")]
        controller.gate.clear()
        manager = ProducerIdManager(controller.allocate, broker_id=7)
        waiting = [asyncio.ensure_future(manager.next_id()) for _ in range(3)]
        await controller.called.wait()
        controller.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert controller.calls == 1
        for result in results:
            assert isinstance(result, CoordinatorLoadInProgressError) and result.retriable
            assert "broker 7" in result.message and "REQUEST_TIMED_OUT" in result.message
        assert await manager.next_id() == 0
        assert controller.calls == 2

    run(main())


def test_a_non_retriable_controller_answer_is_still_retriable_for_the_producer() -> None:
    async def main() -> None:
        controller = FakeController()
        controller.errors = [StaleBrokerEpochError("broker epoch 3 is not 4")]
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        with pytest.raises(CoordinatorLoadInProgressError, match="STALE_BROKER_EPOCH"):
            await manager.next_id()
        assert await manager.next_id() == 0

    run(main())


def test_a_caller_that_gives_up_does_not_cancel_the_request_for_the_others() -> None:
    async def main() -> None:
        controller = FakeController(size=5)
        controller.gate.clear()
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        impatient = asyncio.ensure_future(manager.next_id())
        patient = asyncio.ensure_future(manager.next_id())
        await controller.called.wait()  # both are waiting on the request
        impatient.cancel()
        controller.gate.set()
        assert await patient == 0
        assert impatient.cancelled() and controller.calls == 1
        assert await manager.next_id() == 1

    run(main())


@pytest.mark.parametrize("callback_ran", [False, True])
def test_a_block_that_arrives_after_every_caller_gave_up_is_kept(callback_ran: bool) -> None:
    async def main() -> None:
        controller = FakeController(size=5)
        controller.gate.clear()
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        impatient = asyncio.ensure_future(manager.next_id())
        await controller.called.wait()
        impatient.cancel()
        controller.gate.set()
        # The request completes with nobody waiting, in the step that serves it; its done
        # callback is queued behind this test's wake-up (asyncio's ready queue is FIFO).
        await controller.served.wait()
        assert in_flight(manager)
        if callback_ran:
            await asyncio.sleep(0)  # one loop turn: the done callback runs
            assert not in_flight(manager)
        assert await manager.next_id() == 0
        assert await manager.next_id() == 1
        assert controller.calls == 1 and not manager.fetching
        assert impatient.cancelled()

    run(main())


def test_an_invalid_block_is_refused() -> None:
    async def main() -> None:
        async def empty() -> ProducerIdBlock:
            return ProducerIdBlock(10, 0)

        with pytest.raises(CoordinatorLoadInProgressError, match="invalid producer id block"):
            await ProducerIdManager(empty, broker_id=1).next_id()

    run(main())


def test_close_cancels_a_request_in_flight() -> None:
    async def main() -> None:
        controller = FakeController()
        controller.gate.clear()
        manager = ProducerIdManager(controller.allocate, broker_id=1)
        waiter = asyncio.ensure_future(manager.next_id())
        await controller.called.wait()
        await manager.close()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    run(main())
