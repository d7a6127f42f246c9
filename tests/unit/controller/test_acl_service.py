"""The AclService handlers in process, over a real one-voter QuorumRuntime: writes commit
through Raft, SECURITY_DISABLED when the authorizer is off, NOT_CONTROLLER off the leader, and
DescribeAcls served by any controller."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest

from raftka.common.ids import NodeId
from raftka.common.rpc.status import ERROR_KEY
from raftka.common.security.acl_filters import AclFilter
from raftka.common.security.model import ALLOW, LITERAL, OP_WRITE, RESOURCE_TOPIC, Acl
from raftka.controller.acl_service import AclServicer
from raftka.controller.active import ActiveController
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.quorum.runtime import QuorumRuntime
from raftka.controller.raft.config import RaftConfig
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import security_pb2 as pb
from tests.conditions import until

from .quorum.fakes import RecordingOutbox, RecordingStore
from .test_service import Aborted, FakeContext

ACL = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW)


@asynccontextmanager
async def acl_service(
    *, enabled: bool = True, voters: int = 1
) -> AsyncIterator[tuple[AclServicer, QuorumRuntime, MetadataStateMachine]]:
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
    await runtime.start()
    try:
        yield AclServicer(active=active, state=state, enabled=enabled), runtime, state
    finally:
        await runtime.stop()


def test_create_describe_delete_commit_through_raft() -> None:
    async def scenario() -> None:
        async with acl_service() as (servicer, runtime, state):
            await until(lambda: runtime.is_ready_leader, timeout_s=10, what="leading")
            created = await servicer.CreateAcls(
                pb.CreateAclsRequest(creations=[ACL.to_proto()]), FakeContext()
            )
            (result,) = created.results
            assert result.error_code == cpb.NONE and result.id
            assert dict(state.image.security.acls) == {result.id: ACL}
            described = await servicer.DescribeAcls(pb.DescribeAclsRequest(), FakeContext())
            assert [d.id for d in described.acls] == [result.id]
            deleted = await servicer.DeleteAcls(
                pb.DeleteAclsRequest(filters=[AclFilter(principal="User:alice").to_proto()]),
                FakeContext(),
            )
            assert [d.id for d in deleted.results[0].deleted] == [result.id]
            assert not state.image.security.acls

    asyncio.run(scenario())


def test_security_disabled() -> None:
    async def scenario() -> None:
        async with acl_service(enabled=False) as (servicer, runtime, state):
            await until(lambda: runtime.is_ready_leader, timeout_s=10, what="leading")
            applied = runtime.applied_index
            created = await servicer.CreateAcls(
                pb.CreateAclsRequest(creations=[ACL.to_proto(), ACL.to_proto()]), FakeContext()
            )
            assert [r.error_code for r in created.results] == [cpb.SECURITY_DISABLED] * 2
            assert "authorizer_enable" in created.results[0].error_message
            deleted = await servicer.DeleteAcls(
                pb.DeleteAclsRequest(filters=[AclFilter().to_proto()]), FakeContext()
            )
            assert [r.error_code for r in deleted.results] == [cpb.SECURITY_DISABLED]
            with pytest.raises(Aborted) as aborted:
                await servicer.DescribeAcls(pb.DescribeAclsRequest(), FakeContext())
            assert aborted.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert aborted.value.trailing[ERROR_KEY] == "SECURITY_DISABLED"
            assert runtime.applied_index == applied and not state.image.security.acls

    asyncio.run(scenario())


def test_writes_need_the_active_controller_and_reads_do_not() -> None:
    async def scenario() -> None:
        async with acl_service(voters=3) as (servicer, _runtime, _state):
            with pytest.raises(Aborted) as aborted:
                await servicer.CreateAcls(
                    pb.CreateAclsRequest(creations=[ACL.to_proto()]), FakeContext()
                )
            assert aborted.value.trailing[ERROR_KEY] == "NOT_CONTROLLER"
            described = await servicer.DescribeAcls(pb.DescribeAclsRequest(), FakeContext())
            assert described.error_code == cpb.NONE and not described.acls
            with pytest.raises(Aborted) as aborted:
                await servicer.CreateAcls(pb.CreateAclsRequest(), FakeContext())
            assert aborted.value.code == grpc.StatusCode.INVALID_ARGUMENT

    asyncio.run(scenario())
