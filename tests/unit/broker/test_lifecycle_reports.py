"""A broker reports the peers it cannot reach in a heartbeat sent at once, not at the next
interval; the same peer at most every REPORT_INTERVAL_MS; reports a failed heartbeat did not
deliver go in the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.errors import InconsistentClusterIdError, NetworkError, RequestTimedOutError
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import controller_pb2 as pb
from tests.conditions import until


class _Stub:
    def __init__(self, sent: list[pb.BrokerHeartbeatRequest], fail: list[bool]) -> None:
        self._sent = sent
        self._fail = fail

    async def BrokerHeartbeat(self, request: pb.BrokerHeartbeatRequest, **_: float) -> Any:
        self._sent.append(request)
        if self._fail and self._fail.pop(0):
            raise NetworkError("lost")
        return pb.BrokerHeartbeatResponse(is_caught_up=True)


class _Controller:
    """Stands in for the ControllerClient: records each heartbeat; fails those asked to."""

    def __init__(self) -> None:
        self.sent: list[pb.BrokerHeartbeatRequest] = []
        self.fail: list[bool] = []

    async def call(self, invoke: Callable[[Any, float], Awaitable[Any]], **_: Any) -> Any:
        return await invoke(_Stub(self.sent, self.fail), 1.0)

    async def close(self) -> None:
        return None


def _reported(request: pb.BrokerHeartbeatRequest) -> list[tuple[int, int]]:
    return [(b.broker_id, b.broker_epoch) for b in request.unreachable_brokers]


def test_a_report_goes_out_at_once_and_again_after_a_lost_heartbeat() -> None:
    async def main() -> None:
        lifecycle = BrokerLifecycle(
            ["127.0.0.1:1"], broker_id=1, cluster_id="c", listeners=[], heartbeat_interval_s=60
        )
        controller = _Controller()
        lifecycle.client = controller  # type: ignore[assignment]
        lifecycle.broker_epoch = 5
        task = asyncio.create_task(lifecycle._heartbeat_loop())
        try:
            await until(lambda: len(controller.sent) == 1, timeout_s=20, what="the first heartbeat")
            assert _reported(controller.sent[0]) == []
            controller.fail = [True]
            lifecycle.report_unreachable(2, 9)
            lifecycle.report_unreachable(1, 5)  # itself: never reported
            # Well before the 60 s interval: at once, and again since the first was lost.
            await until(lambda: len(controller.sent) == 3, timeout_s=20, what="two heartbeats")
            assert _reported(controller.sent[1]) == [(2, 9)]
            assert _reported(controller.sent[2]) == [(2, 9)]
            lifecycle.report_unreachable(2, 9)  # within REPORT_INTERVAL_MS: no new heartbeat
            lifecycle.report_unreachable(3, 4)
            await until(lambda: len(controller.sent) == 4, timeout_s=20, what="a heartbeat")
            assert _reported(controller.sent[3]) == [(3, 4)]
        finally:
            await cancel_and_wait([task])

    asyncio.run(asyncio.wait_for(main(), 50))


class _Registrar:
    """A controller client whose RegisterBroker fails with ``errors`` first, in order."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.attempts = 0

    async def call(self, invoke: Callable[[Any, float], Awaitable[Any]], **_: Any) -> Any:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return pb.RegisterBrokerResponse(broker_epoch=7)

    async def close(self) -> None:
        return None


def test_registration_outlasts_controllers_that_do_not_answer_in_time() -> None:
    """A broker restarted while the controllers are slow (a loaded machine, an election)
    keeps registering instead of exiting after one client timeout; a non-retriable refusal
    still ends it at once."""

    async def main() -> None:
        lifecycle = BrokerLifecycle(
            ["127.0.0.1:1"], broker_id=1, cluster_id="c", listeners=[], heartbeat_interval_s=0.01
        )
        slow = _Registrar(
            [RequestTimedOutError("no active controller answered"), NetworkError("lost")]
        )
        lifecycle.client = slow  # type: ignore[assignment]
        lifecycle._own_follower = False
        await lifecycle.start(registration_timeout_s=30)
        try:
            assert (slow.attempts, lifecycle.broker_epoch) == (3, 7)
        finally:
            await cancel_and_wait(lifecycle._tasks)

        refused = _Registrar([InconsistentClusterIdError("cluster id x, expected c")])
        lifecycle.client = refused  # type: ignore[assignment]
        with pytest.raises(InconsistentClusterIdError):
            await lifecycle.start(registration_timeout_s=30)
        assert refused.attempts == 1

    asyncio.run(main())
