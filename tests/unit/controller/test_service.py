"""The ControllerService handlers in process: a real QuorumRuntime (one voter, or three that
never hear from each other) on in-memory storage, the ActiveController and the servicer, driven
through their gRPC methods with a fake context. A fault in this middle layer shows up here in
a second, not only through real processes."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from raftka.common.ids import NodeId
from raftka.common.rpc.status import ERROR_KEY, LEADER_KEY
from raftka.controller.active import ActiveController
from raftka.controller.broker_sessions import BrokerSessionMonitor
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.quorum.runtime import QuorumRuntime
from raftka.controller.raft.config import RaftConfig
from raftka.controller.service import ControllerServicer
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import until

from .quorum.fakes import RecordingOutbox, RecordingStore

CLUSTER_ID = "AAAAAAAAAAAAAAAAAAAAAA"
WAIT_S = 10.0


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: dict[str, str]) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code, self.details, self.trailing = code, details, trailing


class FakeContext:
    """What the handlers use of grpc.aio.ServicerContext."""

    def __init__(self) -> None:
        self.trailing: dict[str, str] = {}

    def set_trailing_metadata(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.trailing.update(dict(pairs))

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details, self.trailing)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"


@asynccontextmanager
async def controller(voters: int = 1) -> AsyncIterator[tuple[ControllerServicer, QuorumRuntime]]:
    """Node 1 of ``voters`` voters. With one voter it elects itself; with more, its messages
    go nowhere, so it never leads."""
    store = RecordingStore()
    addresses = {NodeId(i): f"127.0.0.1:{9090 + i}" for i in range(1, voters + 1)}
    state = MetadataStateMachine()
    runtime = QuorumRuntime(
        node_id=NodeId(1),
        voters=list(addresses),
        raft_config=RaftConfig(election_timeout_ticks=5, heartbeat_ticks=1),
        storage=store,
        transport=RecordingOutbox(store),
        state_machine=state,
        tick_s=0.002,
        snapshot_after_bytes=1 << 30,
        rng=random.Random(1),
    )
    active = ActiveController(runtime, state, addresses, request_timeout_s=5.0)
    sessions = BrokerSessionMonitor(active, CLUSTER_ID, 60_000)
    servicer = ControllerServicer(
        cluster_id=CLUSTER_ID,
        runtime=runtime,
        active=active,
        state=state,
        sessions=sessions,
        addresses=addresses,
        tick_s=0.002,
    )
    await runtime.start()
    try:
        yield servicer, runtime
    finally:
        await runtime.stop()


async def _leading(runtime: QuorumRuntime) -> None:
    await until(lambda: runtime.is_ready_leader, timeout_s=WAIT_S, what="node 1 leading")


def _call(method: Any, request: Any) -> Any:
    return method(request, FakeContext())


def test_a_created_topic_commits_through_raft_and_is_described() -> None:
    async def scenario() -> None:
        async with controller() as (servicer, runtime):
            await _leading(runtime)
            created = await _call(
                servicer.CreateTopics,
                pb.CreateTopicsRequest(
                    topics=[pb.NewTopic(name="t", num_partitions=2, replication_factor=1)]
                ),
            )
            # No broker is registered: the topic cannot be placed, and nothing is written.
            (result,) = created.results
            assert result.error_code == cpb.INVALID_REPLICATION_FACTOR
            before = runtime.applied_index

            registered = await _call(
                servicer.RegisterBroker,
                pb.RegisterBrokerRequest(
                    broker_id=4,
                    cluster_id=CLUSTER_ID,
                    incarnation_id="i-1",
                    listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=9999)],
                ),
            )
            assert registered.broker_epoch > before
            beat = await _call(
                servicer.BrokerHeartbeat,
                pb.BrokerHeartbeatRequest(
                    broker_id=4,
                    broker_epoch=registered.broker_epoch,
                    current_metadata_index=runtime.applied_index,
                ),
            )
            assert beat.is_caught_up and beat.controller_id == 1
            created = await _call(
                servicer.CreateTopics,
                pb.CreateTopicsRequest(
                    topics=[pb.NewTopic(name="t", num_partitions=2, replication_factor=1)]
                ),
            )
            (result,) = created.results
            assert result.error_code == cpb.NONE, result.error_message
            described = await _call(servicer.DescribeTopics, pb.DescribeTopicsRequest(names=["t"]))
            (topic,) = described.topics
            assert [p.replicas for p in topic.partitions] == [[4], [4]]
            assert runtime.applied_index > before

    asyncio.run(scenario())


def test_bad_input_is_refused_with_its_code_and_changes_nothing() -> None:
    async def scenario() -> None:
        async with controller() as (servicer, runtime):
            await _leading(runtime)
            index = runtime.applied_index
            with pytest.raises(Aborted) as refused:
                await _call(servicer.CreateTopics, pb.CreateTopicsRequest())
            assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.trailing[ERROR_KEY] == "INVALID_REQUEST"
            assert "topics is empty" in refused.value.details
            with pytest.raises(Aborted) as too_many:
                await _call(
                    servicer.DescribeTopics,
                    pb.DescribeTopicsRequest(names=[f"t{i}" for i in range(10_001)]),
                )
            assert "at most 10000" in too_many.value.details
            assert runtime.applied_index == index

    asyncio.run(scenario())


def test_a_controller_that_does_not_lead_answers_not_controller() -> None:
    async def scenario() -> None:
        async with controller(voters=3) as (servicer, _runtime):
            with pytest.raises(Aborted) as refused:
                await _call(servicer.DescribeCluster, pb.DescribeClusterRequest())
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
            assert refused.value.trailing[ERROR_KEY] == "NOT_CONTROLLER"
            # No leader is known, so there is no hint to follow: the client tries the others.
            assert LEADER_KEY not in refused.value.trailing
            quorum = await _call(
                servicer.DescribeQuorum, pb.DescribeQuorumRequest(allow_follower=True)
            )
            assert quorum.answered_by == 1 and quorum.leader_id != 1

    asyncio.run(scenario())
