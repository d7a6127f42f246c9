"""The inter-node RPC table and its interceptor.

Every method of every Raftka service is classified (a new RPC cannot be forgotten), and on a
real gRPC server the interceptor refuses the inter-node ones to callers without
CLUSTER_ACTION before their handler runs: forged Raft messages (AppendEntries with a topic
record or an undecodable entry, TimeoutNow), RegisterBroker, BrokerHeartbeat, AlterPartition,
AllocateProducerIds, WriteTxnMarkers and fault injection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from raftka.common.fault_service import add_fault_service
from raftka.common.faults import FaultInjector
from raftka.common.ids import NodeId
from raftka.common.rpc.channels import new_server, open_channel
from raftka.common.rpc.status import ERROR_KEY
from raftka.common.security.caller import Caller, bind_caller, reset_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.inter_node import (
    CLUSTER_ACTION_METHODS,
    CLUSTER_METHODS,
    HANDLER_CHECKED_METHODS,
    inter_node_interceptors,
)
from raftka.common.security.model import CLUSTER_RESOURCE_NAME, OP_ALTER, RESOURCE_CLUSTER
from raftka.controller.quorum.transport import RaftServicer
from raftka.controller.raft.messages import Message
from raftka.v1 import (
    broker_pb2,
    broker_pb2_grpc,
    controller_pb2,
    controller_pb2_grpc,
    faults_pb2,
    faults_pb2_grpc,
    groups_pb2,
    raft_pb2,
    raft_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    transactions_pb2,
    transactions_pb2_grpc,
)
from tests.unit.common.security.fakes import NODE, FakeAuthorizer

PRINCIPAL_KEY = "x-test-principal"


def all_methods() -> set[str]:
    """Every RPC of every service the wire contract defines."""
    modules = (
        broker_pb2,
        controller_pb2,
        faults_pb2,
        groups_pb2,
        raft_pb2,
        security_pb2,
        transactions_pb2,
    )
    return {
        f"/{service.full_name}/{method.name}"
        for module in modules
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_every_rpc_is_classified_once() -> None:
    methods = all_methods()
    assert len(methods) > 40
    unclassified = methods - set(CLUSTER_METHODS) - set(HANDLER_CHECKED_METHODS)
    assert not unclassified, f"classify these RPCs in common/security/inter_node.py: {unclassified}"
    assert not set(CLUSTER_METHODS) & set(HANDLER_CHECKED_METHODS)
    assert (set(CLUSTER_METHODS) | set(HANDLER_CHECKED_METHODS)) <= methods  # no stale names


def test_the_inter_node_rpcs_of_the_design_are_in_the_table() -> None:
    for name in (
        "RaftService/Deliver",
        "ControllerService/RegisterBroker",
        "ControllerService/BrokerHeartbeat",
        "ControllerService/AlterPartition",
        "ControllerService/AllocateProducerIds",
        "TransactionService/WriteTxnMarkers",
        "FaultService/InjectFaults",
    ):
        assert f"/raftka.v1.{name}" in CLUSTER_ACTION_METHODS


def test_no_interceptor_when_authorization_is_off() -> None:
    assert inter_node_interceptors(OPEN_GUARD) == ()


class BindPrincipal(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Stands in for the authentication interceptor: binds the caller named in metadata,
    inside the call (as an interceptor that wraps handlers does)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        principal = dict(details.invocation_metadata or ()).get(PRINCIPAL_KEY, "User:ANONYMOUS")
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def bound(request: Any, context: Any) -> Any:
            token = bind_caller(Caller(principal, "127.0.0.1", True, details.method))
            try:
                return await inner(request, context)
            finally:
                reset_caller(token)

        return grpc.unary_unary_rpc_method_handler(
            bound,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class Node:
    """A server with the Raft, Controller (unimplemented), Transaction (unimplemented) and
    Fault services behind the interceptors."""

    def __init__(self) -> None:
        self.delivered: list[Message] = []
        guard = AccessGuard(
            FakeAuthorizer([(ADMIN, OP_ALTER, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)])
        )
        self.server = new_server(interceptors=(BindPrincipal(), *inter_node_interceptors(guard)))
        raft_pb2_grpc.add_RaftServiceServicer_to_server(
            RaftServicer("c1", NodeId(1), self.delivered.append), self.server
        )
        controller_pb2_grpc.add_ControllerServiceServicer_to_server(
            controller_pb2_grpc.ControllerServiceServicer(),  # type: ignore[abstract]
            self.server,
        )
        transactions_pb2_grpc.add_TransactionServiceServicer_to_server(
            transactions_pb2_grpc.TransactionServiceServicer(),  # type: ignore[abstract]
            self.server,
        )
        security_pb2_grpc.add_AclServiceServicer_to_server(
            security_pb2_grpc.AclServiceServicer(),  # type: ignore[abstract]
            self.server,
        )
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(
            broker_pb2_grpc.BrokerServiceServicer(),  # type: ignore[abstract]
            self.server,
        )
        self.faults = FaultInjector()
        add_fault_service(self.server, self.faults)
        self.port = self.server.add_insecure_port("127.0.0.1:0")


def with_node(body: Callable[[Node], Awaitable[None]]) -> None:
    """Run ``body`` against a started node, then stop it."""

    async def scenario() -> None:
        node = Node()
        await node.server.start()
        try:
            await asyncio.wait_for(body(node), 20)
        finally:
            await node.server.stop(grace=None)

    asyncio.run(scenario())


def as_(principal: str) -> tuple[tuple[str, str], ...]:
    return ((PRINCIPAL_KEY, principal),)


def envelope(*messages: raft_pb2.RaftMessage) -> raft_pb2.RaftEnvelope:
    return raft_pb2.RaftEnvelope(cluster_id="c1", from_node=2, to_node=1, messages=messages)


FORGED_RAFT = {
    "append_entries_with_a_topic_record": raft_pb2.RaftMessage(
        term=99,
        append_entries=raft_pb2.AppendEntries(
            prev_index=0,
            prev_term=0,
            leader_commit=1,
            entries=[raft_pb2.RaftEntry(index=1, term=99, data=b"\x0a\x05topic")],
        ),
    ),
    "append_entries_with_an_undecodable_entry": raft_pb2.RaftMessage(
        term=99,
        append_entries=raft_pb2.AppendEntries(
            entries=[raft_pb2.RaftEntry(index=1, term=99, data=b"\xff\xff\xff")], leader_commit=1
        ),
    ),
    "timeout_now": raft_pb2.RaftMessage(term=99, timeout_now=raft_pb2.TimeoutNow()),
}


def assert_cluster_denied(error: grpc.aio.AioRpcError) -> None:
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    trailing = dict(error.trailing_metadata() or ())
    assert trailing[ERROR_KEY] == "CLUSTER_AUTHORIZATION_FAILED"
    assert "CLUSTER_ACTION" in (error.details() or "")


@pytest.mark.parametrize("forged", sorted(FORGED_RAFT))
def test_forged_raft_messages_from_a_non_node_never_reach_the_core(forged: str) -> None:
    with_node(lambda node: forged_raft(node, forged))


async def forged_raft(node: Node, forged: str) -> None:
    async with open_channel(f"127.0.0.1:{node.port}") as channel:
        stub = raft_pb2_grpc.RaftServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Deliver(envelope(FORGED_RAFT[forged]), metadata=as_("User:mallory"))
        assert_cluster_denied(raised.value)
        assert node.delivered == []
        # A node's well-formed message gets through.
        await stub.Deliver(envelope(FORGED_RAFT["timeout_now"]), metadata=as_(NODE))
        assert len(node.delivered) == 1


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("RegisterBroker", controller_pb2.RegisterBrokerRequest(broker_id=7)),
        (
            "BrokerHeartbeat",
            controller_pb2.BrokerHeartbeatRequest(broker_id=1, want_shut_down=True),
        ),
        ("AlterPartition", controller_pb2.AlterPartitionRequest(broker_id=1)),
        ("AllocateProducerIds", controller_pb2.AllocateProducerIdsRequest(broker_id=1)),
    ],
)
def test_broker_lifecycle_rpcs_need_cluster_action(method: str, request_message: Any) -> None:
    with_node(lambda node: lifecycle_rpc(node, method, request_message))


async def lifecycle_rpc(node: Node, method: str, request_message: Any) -> None:
    async with open_channel(f"127.0.0.1:{node.port}") as channel:
        call = getattr(controller_pb2_grpc.ControllerServiceStub(channel), method)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call(request_message, metadata=as_("User:mallory"))
        assert_cluster_denied(raised.value)
        # A node reaches the handler (here unimplemented).
        with pytest.raises(grpc.aio.AioRpcError) as reached:
            await call(request_message, metadata=as_(NODE))
        assert reached.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_markers_and_fault_injection_need_cluster_action() -> None:
    with_node(markers_and_faults)


async def markers_and_faults(node: Node) -> None:
    async with open_channel(f"127.0.0.1:{node.port}") as channel:
        markers = transactions_pb2_grpc.TransactionServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await markers.WriteTxnMarkers(
                transactions_pb2.WriteTxnMarkersRequest(), metadata=as_("User:mallory")
            )
        assert_cluster_denied(raised.value)
        faults = faults_pb2_grpc.FaultServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await faults.DescribeFaults(faults_pb2.DescribeFaultsRequest())  # anonymous
        assert_cluster_denied(raised.value)
        state = await faults.DescribeFaults(faults_pb2.DescribeFaultsRequest(), metadata=as_(NODE))
        assert not state.enabled


def test_the_replication_stream_needs_cluster_action() -> None:
    with_node(replication_stream)


async def replication_stream(node: Node) -> None:
    async with open_channel(f"127.0.0.1:{node.port}") as channel:
        stream = broker_pb2_grpc.BrokerServiceStub(channel).ReplicaFetchStream()
        await stream.write(broker_pb2.FetchRequest(replica_id=5))  # a fake follower
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream.read()
        assert_cluster_denied(raised.value)


ADMIN = "User:admin"


def test_security_administration_needs_its_cluster_operation() -> None:
    with_node(security_administration)


async def security_administration(node: Node) -> None:
    async with open_channel(f"127.0.0.1:{node.port}") as channel:
        acls = security_pb2_grpc.AclServiceStub(channel)
        for who in ("User:mallory", NODE):  # CLUSTER_ACTION is not ALTER
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await acls.CreateAcls(security_pb2.CreateAclsRequest(), metadata=as_(who))
            assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "cluster administration" in (raised.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as reached:
            await acls.CreateAcls(security_pb2.CreateAclsRequest(), metadata=as_(ADMIN))
        assert reached.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # DESCRIBE is a separate grant: ALTER implies it only in the real authorizer.
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await acls.DescribeAcls(security_pb2.DescribeAclsRequest(), metadata=as_("User:bob"))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
