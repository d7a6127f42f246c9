"""A fake group coordinator for client tests: a real grpc.aio GroupService server per fake
broker (127.0.0.1, port 0), beside FakeCluster's in-process BrokerService.

The coordinator is deliberately simple and driven by the test: a joining member gets
``initial`` (default: every partition of its subscribed topics if it is alone), and the test
changes a member's assignment with :meth:`GroupState.assign`, which the coordinator sends with
the member's next heartbeat, or at once on its stream. It records every request, so tests can
assert what the client sent and in which order.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc

from raftka.client.types import TopicPartition
from raftka.common import group_errors
from raftka.common.errors import CoordinatorLoadInProgressError, RaftkaError
from raftka.common.rpc.channels import new_server, open_channel
from raftka.common.rpc.status import status_for, trailing_metadata_for
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import groups_pb2_grpc
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from tests.unit.client.fake_cluster import FakeCluster


def topics_of(partitions: set[TopicPartition]) -> list[gpb.GroupTopicPartitions]:
    by: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by.setdefault(tp.topic, []).append(tp.partition)
    return [gpb.GroupTopicPartitions(topic=t, partitions=p) for t, p in by.items()]


def partitions_of(topics: Any) -> set[TopicPartition]:
    return {TopicPartition(t.topic, p) for t in topics for p in t.partitions}


@dataclass
class Member:
    member_id: str
    epoch: int
    topics: list[str]
    instance_id: str = ""
    owned: set[TopicPartition] = field(default_factory=set)
    target: set[TopicPartition] = field(default_factory=set)
    sent: set[TopicPartition] | None = None
    """The assignment last sent (None: never)."""
    stream: asyncio.Queue[gpb.ConsumerGroupHeartbeatResponse] | None = None


@dataclass
class Event:
    kind: str
    """heartbeat, commit, fetch."""
    node: int
    request: Any


class GroupState:
    def __init__(self, cluster: FakeCluster, group: str = "g") -> None:
        self.cluster = cluster
        self.group = group
        self.coordinator = next(iter(cluster.addresses))
        self.heartbeat_interval_ms = 5000
        self.members: dict[str, Member] = {}
        self.offsets: dict[TopicPartition, int] = {}
        self.events: list[Event] = []
        self.fail_next: list[RaftkaError] = []
        """Errors the next calls (any RPC but FindCoordinator) fail with, in order."""
        self.fail_fetches: list[RaftkaError] = []
        """Errors the next OffsetFetch calls fail with, in order."""
        self.answer_next: list[ErrorCode.ValueType] = []
        """Error codes the next heartbeats answer with (UNKNOWN_MEMBER_ID...)."""
        self._ids = itertools.count(1)
        self.group_type = "consumer"
        self.extra_groups: dict[int, list[str]] = {}
        """Empty groups other brokers list (ListGroups)."""

    # ------------------------------------------------------------------ test controls

    def heartbeats(self) -> list[gpb.ConsumerGroupHeartbeatRequest]:
        return [e.request for e in self.events if e.kind == "heartbeat"]

    def commits(self) -> list[gpb.OffsetCommitRequest]:
        return [e.request for e in self.events if e.kind == "commit"]

    def member(self) -> Member:
        (m,) = self.members.values()
        return m

    def assign(self, member_id: str, partitions: set[TopicPartition]) -> None:
        m = self.members[member_id]
        m.target = set(partitions)
        if m.stream is not None:
            m.stream.put_nowait(self._reply(m))

    # ------------------------------------------------------------------ the protocol

    def check(self, node: int) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        if node != self.coordinator:
            raise group_errors.NotCoordinatorError(f"node {node} does not coordinate")

    def _reply(self, m: Member) -> gpb.ConsumerGroupHeartbeatResponse:
        response = gpb.ConsumerGroupHeartbeatResponse(
            member_id=m.member_id,
            member_epoch=m.epoch,
            heartbeat_interval_ms=self.heartbeat_interval_ms,
        )
        if m.sent != m.target:
            m.epoch += 1
            response.member_epoch = m.epoch
            m.sent = set(m.target)
            response.has_assignment = True
            response.assignment.topic_partitions.extend(topics_of(m.target))
        return response

    def heartbeat(
        self, node: int, request: gpb.ConsumerGroupHeartbeatRequest
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        self.check(node)
        self.events.append(Event("heartbeat", node, request))
        if self.answer_next:
            code = self.answer_next.pop(0)
            self.members.pop(request.member_id, None)
            return gpb.ConsumerGroupHeartbeatResponse(error_code=code, error_message="fake")
        if request.member_epoch == 0:
            member_id = request.member_id or f"m{next(self._ids)}"
            m = Member(member_id, 0, list(request.subscribed_topic_names), request.instance_id)
            if not self.members:
                m.target = {
                    tp
                    for (t, p) in self.cluster.partitions
                    if t in m.topics
                    for tp in [TopicPartition(t, p)]
                }
            self.members[member_id] = m
            return self._reply(m)
        if request.member_epoch < 0:
            self.members.pop(request.member_id, None)
            return gpb.ConsumerGroupHeartbeatResponse(
                member_id=request.member_id, member_epoch=request.member_epoch
            )
        known = self.members.get(request.member_id)
        if known is None:
            return gpb.ConsumerGroupHeartbeatResponse(
                error_code=ErrorCode.UNKNOWN_MEMBER_ID, error_message="no such member"
            )
        if request.owned_partitions_set:
            known.owned = partitions_of(request.owned_partitions)
        return self._reply(known)

    def commit(self, node: int, request: gpb.OffsetCommitRequest) -> gpb.OffsetCommitResponse:
        self.check(node)
        self.events.append(Event("commit", node, request))
        code = ErrorCode.NONE
        m = self.members.get(request.member_id)
        if request.member_epoch == -1 and not request.member_id:
            if self.members:
                code = ErrorCode.UNKNOWN_MEMBER_ID
            else:
                self.group_type = "simple" if self.group_type != "consumer" else "consumer"
        elif m is None:
            code = ErrorCode.UNKNOWN_MEMBER_ID
        elif m.epoch != request.member_epoch:
            code = ErrorCode.STALE_MEMBER_EPOCH
        response = gpb.OffsetCommitResponse()
        for t in request.topics:
            result = response.topics.add(name=t.name)
            for p in t.partitions:
                result.partitions.add(partition=p.partition, error_code=code)
                if code == ErrorCode.NONE:
                    self.offsets[TopicPartition(t.name, p.partition)] = p.offset
        return response

    def fetch(self, node: int, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
        self.check(node)
        self.events.append(Event("fetch", node, request))
        if self.fail_fetches:
            raise self.fail_fetches.pop(0)
        if request.member_id:  # as the real coordinator: the member's current epoch only
            m = self.members.get(request.member_id)
            if m is None:
                raise group_errors.UnknownMemberIdError(f"no member {request.member_id}")
            if m.epoch != request.member_epoch:
                raise group_errors.StaleMemberEpochError(
                    f"epoch {request.member_epoch}, the member's is {m.epoch}"
                )
        response = gpb.OffsetFetchResponse()
        wanted = partitions_of(request.topics) or set(self.offsets)
        by: dict[str, gpb.OffsetFetchTopic] = {}
        for tp in sorted(wanted):
            t = by.get(tp.topic) or by.setdefault(tp.topic, response.topics.add(name=tp.topic))
            t.partitions.add(
                partition=tp.partition, offset=self.offsets.get(tp, -1), leader_epoch=-1
            )
        return response


async def _abort(context: grpc.aio.ServicerContext[Any, Any], e: RaftkaError) -> None:
    context.set_trailing_metadata(trailing_metadata_for(e))
    await context.abort(status_for(e), e.message)


class FakeGroupServicer(groups_pb2_grpc.GroupServiceServicer):
    def __init__(self, node: int, state: GroupState) -> None:
        self.node = node
        self.state = state

    async def FindCoordinator(self, request: Any, context: Any) -> Any:
        s = self.state
        host, port = s.cluster.addresses[s.coordinator].rsplit(":", 1)
        response = gpb.FindCoordinatorResponse()
        for key in request.keys:
            response.coordinators.add(
                key=key, node_id=s.coordinator, host=host, port=int(port), partition=0
            )
        return response

    async def _unary(self, fn: Any, request: Any, context: Any) -> Any:
        try:
            return fn(self.node, request)
        except RaftkaError as e:
            await _abort(context, e)

    async def ConsumerGroupHeartbeat(self, request: Any, context: Any) -> Any:
        return await self._unary(self.state.heartbeat, request, context)

    async def OffsetCommit(self, request: Any, context: Any) -> Any:
        return await self._unary(self.state.commit, request, context)

    async def OffsetFetch(self, request: Any, context: Any) -> Any:
        return await self._unary(self.state.fetch, request, context)

    async def TxnOffsetCommit(self, request: Any, context: Any) -> Any:
        # Transactional offsets are tested on tests/unit/client/fake_txn.py's coordinator.
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no transactions in this fake")

    async def ListGroups(self, request: Any, context: Any) -> Any:
        s = self.state
        response = gpb.ListGroupsResponse()
        if self.node == s.coordinator and (s.members or s.offsets):
            state = "stable" if s.members else "empty"
            response.groups.add(group_id=s.group, group_type=s.group_type, state=state)
        for group_id in s.extra_groups.get(self.node, ()):
            response.groups.add(group_id=group_id, group_type="consumer", state="empty")
        return response

    async def DescribeGroups(self, request: Any, context: Any) -> Any:
        s = self.state
        response = gpb.DescribeGroupsResponse()
        for group_id in request.group_ids:
            g = response.groups.add(group_id=group_id)
            if self.node != s.coordinator:
                g.error_code = ErrorCode.NOT_COORDINATOR
            elif group_id != s.group or not (s.members or s.offsets):
                g.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            else:
                g.state = "stable" if s.members else "empty"
                g.group_type, g.group_epoch, g.assignment_epoch = s.group_type, 3, 3
                g.assignor = "uniform"
                for m in s.members.values():
                    d = g.members.add(
                        member_id=m.member_id,
                        instance_id=m.instance_id,
                        member_epoch=m.epoch,
                        client_id="raftka-consumer",
                        client_host="127.0.0.1",
                        subscribed_topic_names=m.topics,
                        member_state="stable",
                    )
                    d.assignment.topic_partitions.extend(topics_of(m.owned))
                    d.target_assignment.topic_partitions.extend(topics_of(m.target))
        return response

    async def DeleteGroups(self, request: Any, context: Any) -> Any:
        s = self.state
        response = gpb.DeleteGroupsResponse()
        for group_id in request.group_ids:
            r = response.results.add(group_id=group_id)
            if group_id != s.group or not (s.members or s.offsets):
                r.error_code = ErrorCode.GROUP_ID_NOT_FOUND
            elif s.members:
                r.error_code, r.error_message = ErrorCode.NON_EMPTY_GROUP, "it has members"
            else:
                s.offsets.clear()
        return response

    async def OffsetDelete(self, request: Any, context: Any) -> Any:
        s = self.state
        subscribed = {t for m in s.members.values() for t in m.topics}
        response = gpb.OffsetDeleteResponse()
        for t in request.topics:
            result = response.topics.add(name=t.topic)
            for p in t.partitions:
                r = result.partitions.add(partition=p)
                if t.topic in subscribed:
                    r.error_code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC
                else:
                    s.offsets.pop(TopicPartition(t.topic, p), None)
        return response

    async def ConsumerGroupStream(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[gpb.ConsumerGroupHeartbeatResponse]:
        out: asyncio.Queue[gpb.ConsumerGroupHeartbeatResponse | RaftkaError | None] = (
            asyncio.Queue()
        )

        async def read() -> None:
            try:
                async for request in request_iterator:
                    try:
                        response = self.state.heartbeat(self.node, request)
                    except RaftkaError as e:
                        out.put_nowait(e)
                        return
                    m = self.state.members.get(response.member_id)
                    if m is not None:
                        m.stream = out  # type: ignore[assignment]
                    out.put_nowait(response)
            finally:
                out.put_nowait(None)

        reader = asyncio.ensure_future(read())
        try:
            while True:
                item = await out.get()
                if item is None:
                    return
                if isinstance(item, RaftkaError):
                    await _abort(context, item)
                    return
                yield item
        finally:
            reader.cancel()


class FakeGroupCluster(FakeCluster):
    """FakeCluster whose brokers also serve GroupService (real gRPC servers)."""

    def __init__(self, brokers: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__(brokers)
        self.groups = GroupState(self)
        self._servers: dict[int, tuple[grpc.aio.Server, int]] = {}

    async def start(self) -> FakeGroupCluster:
        for node in self.addresses:
            server = new_server()
            groups_pb2_grpc.add_GroupServiceServicer_to_server(
                FakeGroupServicer(node, self.groups), server
            )
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            self._servers[node] = (server, port)
        return self

    def group_stub(self, address: str) -> GroupServiceStub:
        node = self.broker_id(address)
        channel = self._channels.get(address)
        if channel is None:
            channel = open_channel(f"127.0.0.1:{self._servers[node][1]}")
            self._channels[address] = channel
        return GroupServiceStub(channel)

    async def stop(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        for server, _port in self._servers.values():
            await server.stop(None)


async def started(brokers: tuple[int, ...] = (1, 2, 3)) -> FakeGroupCluster:
    return await FakeGroupCluster(brokers).start()


__all__ = [
    "CoordinatorLoadInProgressError",
    "FakeGroupCluster",
    "GroupState",
    "started",
]
