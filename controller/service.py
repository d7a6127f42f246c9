"""The gRPC ControllerService: admin RPCs, the broker lifecycle, and WatchMetadata.

Handlers check the request as a whole, then hand a plan from a control manager to the active
controller (writes) or read the committed image (reads). Errors become statuses in one place
(``raftka.common.rpc.rpc_errors``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeAlias, TypeVar

import grpc
from google.protobuf.message import Message

from raftka.common.clock import monotonic_ms
from raftka.common.errors import (
    InvalidRequestError,
    NetworkError,
    RaftkaError,
    RequestTimedOutError,
)
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.ids import NodeId
from raftka.common.limits import require_items
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.status import rpc_errors, status_for, trailing_metadata_for
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    OP_ALTER_CONFIGS,
    OP_CREATE,
    OP_DELETE,
    OP_DESCRIBE,
    OP_DESCRIBE_CONFIGS,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
)
from raftka.controller.active import ActiveController
from raftka.controller.broker_sessions import BrokerSessionMonitor
from raftka.controller.control.alter_partition import alter_partition
from raftka.controller.control.cluster import describe_brokers
from raftka.controller.control.configs import alter_configs, describe_configs
from raftka.controller.control.elections import elect_leaders
from raftka.controller.control.producer_ids import allocate_producer_ids
from raftka.controller.control.reassignments import (
    alter_partition_reassignments,
    list_partition_reassignments,
)
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.topics import TopicManager, describe_topics
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.metadata_visibility import without_security_records
from raftka.controller.quorum.runtime import QuorumRuntime
from raftka.controller.raft.errors import NotLeader
from raftka.controller.raft.status import Role
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.controller_pb2_grpc import ControllerServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


def _only(request: Request, field: str, keep: Callable[[Any], bool]) -> Request:
    """A copy of ``request`` whose repeated ``field`` holds only the items ``keep`` takes."""
    copy: Request = type(request)()
    copy.CopyFrom(request)
    items = [x for x in getattr(request, field) if keep(x)]
    del getattr(copy, field)[:]
    getattr(copy, field).extend(items)
    return copy


def _topic_of_config(resource: pb.ConfigResource | pb.AlterConfigResource) -> str | None:
    """The topic a config resource names (None for other types: the plan refuses those)."""
    return resource.name if resource.type == cpb.RESOURCE_TYPE_TOPIC else None


class ControllerServicer(ControllerServiceServicer):
    def __init__(
        self,
        *,
        cluster_id: str,
        runtime: QuorumRuntime,
        active: ActiveController,
        state: MetadataStateMachine,
        sessions: BrokerSessionMonitor,
        addresses: dict[NodeId, str],
        tick_s: float,
        guard: AccessGuard = OPEN_GUARD,
    ) -> None:
        """``guard``: the authorization checks of the admin RPCs (the broker-lifecycle RPCs
        are refused to non-nodes by the server's interceptor)."""
        self._guard = guard
        self._cluster_id = cluster_id
        self._runtime = runtime
        self._active = active
        self._state = state
        self._sessions = sessions
        self._addresses = addresses
        self._tick_s = tick_s
        self._topics = TopicManager(random.Random())

    # ---- topics ----

    async def _write_permitted(
        self,
        request: Request,
        field: str,
        name_of: Callable[[Any], str],
        refused: Mapping[str, RaftkaError],
        plan: Callable[[MetadataImage, Request], ControllerResult[Response]],
        empty: Response,
    ) -> Response:
        """Plan and commit ``request`` without the items of its repeated ``field`` that are in
        ``refused``, then add a result for each refused one (its authorization error);
        ``empty`` is the answer when every item was refused."""
        allowed = _only(request, field, lambda item: name_of(item) not in refused)
        response = empty
        if getattr(allowed, field):
            response = await self._active.write(lambda image, _i: plan(image, allowed))
        for name, error in refused.items():
            response.results.add(  # type: ignore[attr-defined]
                name=name, error_code=error.code, error_message=error.message
            )
        return response

    @rpc_errors
    async def CreateTopics(
        self, request: pb.CreateTopicsRequest, context: Context
    ) -> pb.CreateTopicsResponse:
        require_items(len(request.topics), "topics")
        refused: dict[str, RaftkaError] = {}
        if not self._guard.allowed_quietly(OP_CREATE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME):
            refused = self._refused(OP_CREATE, (t.name for t in request.topics))
        return await self._write_permitted(
            request,
            "topics",
            lambda t: t.name,
            refused,
            self._topics.create_topics,
            pb.CreateTopicsResponse(),
        )

    @rpc_errors
    async def DeleteTopics(
        self, request: pb.DeleteTopicsRequest, context: Context
    ) -> pb.DeleteTopicsResponse:
        require_items(len(request.names), "names")
        refused = self._refused(OP_DELETE, request.names)
        return await self._write_permitted(
            request,
            "names",
            lambda name: name,
            refused,
            self._topics.delete_topics,
            pb.DeleteTopicsResponse(),
        )

    @rpc_errors
    async def CreatePartitions(
        self, request: pb.CreatePartitionsRequest, context: Context
    ) -> pb.CreatePartitionsResponse:
        require_items(len(request.topics), "topics")
        refused = self._refused(OP_ALTER, (t.name for t in request.topics))
        return await self._write_permitted(
            request,
            "topics",
            lambda t: t.name,
            refused,
            self._topics.create_partitions,
            pb.CreatePartitionsResponse(),
        )

    @rpc_errors
    async def DescribeTopics(
        self, request: pb.DescribeTopicsRequest, context: Context
    ) -> pb.DescribeTopicsResponse:
        require_items(len(request.names), "names", empty_means_all=True)
        response = describe_topics(self._active.committed_image(), request)
        if not self._guard.enabled:
            return response
        # Named topics the caller may not describe are refused; a listing leaves them out.
        refused = self._refused(OP_DESCRIBE, request.names)
        kept = pb.DescribeTopicsResponse()
        for topic in response.topics:
            if topic.name in refused:
                kept.topics.add(name=topic.name, error_code=refused[topic.name].code)
            elif request.names or self._guard.allowed_quietly(
                OP_DESCRIBE, RESOURCE_TOPIC, topic.name
            ):
                kept.topics.append(topic)
        return kept

    def _refused(self, operation: int, topics: Iterable[str]) -> dict[str, RaftkaError]:
        """The topics the caller may not ``operation``, with their errors (request order)."""
        return self._guard.refusals(operation, RESOURCE_TOPIC, topics)

    def _refused_configs(
        self, operation: int, resources: Iterable[pb.ConfigResource | pb.AlterConfigResource]
    ) -> dict[str, RaftkaError]:
        return self._refused(operation, (t for r in resources if (t := _topic_of_config(r))))

    # ---- partition leadership and reassignment ----

    @rpc_errors
    async def ElectLeaders(
        self, request: pb.ElectLeadersRequest, context: Context
    ) -> pb.ElectLeadersResponse:
        require_items(len(request.topic_partitions), "topic_partitions", empty_means_all=True)
        self._guard.require_cluster(OP_ALTER)
        return await self._active.write(lambda image, _i: elect_leaders(image, request))

    @rpc_errors
    async def AlterPartitionReassignments(
        self, request: pb.AlterPartitionReassignmentsRequest, context: Context
    ) -> pb.AlterPartitionReassignmentsResponse:
        require_items(sum(len(t.partitions) for t in request.topics), "topics[].partitions")
        self._guard.require_cluster(OP_ALTER)
        return await self._active.write(
            lambda image, _i: alter_partition_reassignments(image, request)
        )

    @rpc_errors
    async def ListPartitionReassignments(
        self, request: pb.ListPartitionReassignmentsRequest, context: Context
    ) -> pb.ListPartitionReassignmentsResponse:
        require_items(
            len(request.topics) + sum(len(t.partitions) for t in request.topics),
            "topics and partitions",
            empty_means_all=True,
        )
        self._guard.require_cluster(OP_DESCRIBE)
        return list_partition_reassignments(self._active.committed_image(), request)

    # ---- configs ----

    @rpc_errors
    async def DescribeConfigs(
        self, request: pb.DescribeConfigsRequest, context: Context
    ) -> pb.DescribeConfigsResponse:
        require_items(len(request.resources), "resources")
        refused = self._refused_configs(OP_DESCRIBE_CONFIGS, request.resources)
        allowed = _only(request, "resources", lambda r: _topic_of_config(r) not in refused)
        response = describe_configs(self._active.committed_image(), allowed)
        for name, error in refused.items():
            response.results.add(
                type=cpb.RESOURCE_TYPE_TOPIC,
                name=name,
                error_code=error.code,
                error_message=error.message,
            )
        return response

    @rpc_errors
    async def AlterConfigs(
        self, request: pb.AlterConfigsRequest, context: Context
    ) -> pb.AlterConfigsResponse:
        require_items(len(request.resources), "resources")
        refused = self._refused_configs(OP_ALTER_CONFIGS, request.resources)
        allowed = _only(request, "resources", lambda r: _topic_of_config(r) not in refused)
        response = pb.AlterConfigsResponse()
        if allowed.resources:
            response = await self._active.write(lambda image, _i: alter_configs(image, allowed))
        for name, error in refused.items():
            response.results.add(
                type=cpb.RESOURCE_TYPE_TOPIC,
                name=name,
                error_code=error.code,
                error_message=error.message,
            )
        return response

    # ---- cluster and quorum ----

    @rpc_errors
    async def DescribeCluster(
        self, request: pb.DescribeClusterRequest, context: Context
    ) -> pb.DescribeClusterResponse:
        self._guard.require_cluster(OP_DESCRIBE)
        image = self._active.committed_image()
        return pb.DescribeClusterResponse(
            cluster_id=self._cluster_id,
            controller_id=self._runtime.node_id,
            controllers=[self._controller_node(n) for n in sorted(self._addresses)],
            brokers=describe_brokers(image),
        )

    def _controller_node(self, node_id: NodeId) -> pb.ControllerNode:
        host, _, port = self._addresses[node_id].rpartition(":")
        return pb.ControllerNode(
            node_id=node_id, endpoint=cpb.Endpoint(name="CONTROLLER", host=host, port=int(port))
        )

    @rpc_errors
    async def DescribeQuorum(
        self, request: pb.DescribeQuorumRequest, context: Context
    ) -> pb.DescribeQuorumResponse:
        self._guard.require_cluster(OP_DESCRIBE)
        status = self._runtime.status()
        is_leader = status.role is Role.LEADER
        if not is_leader and not request.allow_follower:
            raise self._active.not_controller()
        response = pb.DescribeQuorumResponse(
            leader_id=-1 if status.leader_id is None else status.leader_id,
            term=status.term,
            commit_index=status.commit_index,
            answered_by=self._runtime.node_id,
        )
        progress = {p.node_id: p for p in status.progress}
        for node_id in sorted(self._addresses):
            voter = self._controller_node(node_id)
            entry = pb.VoterStatus(
                node_id=node_id, endpoint=voter.endpoint, last_index=-1, lag=-1, last_contact_ms=-1
            )
            if node_id == self._runtime.node_id:
                entry.last_index, entry.lag, entry.last_contact_ms = status.last_index, 0, 0
            elif is_leader and node_id in progress:
                p = progress[node_id]
                entry.last_index = p.match_index
                entry.lag = max(0, status.last_index - p.match_index)
                entry.last_contact_ms = int(p.ticks_since_contact * self._tick_s * 1000)
            response.voters.append(entry)
        return response

    @rpc_errors
    async def TransferLeadership(
        self, request: pb.TransferLeadershipRequest, context: Context
    ) -> pb.TransferLeadershipResponse:
        self._guard.require_cluster(OP_ALTER)
        target = request.target_node_id
        if target != -1 and target not in self._addresses:
            raise InvalidRequestError(
                f"target_node_id {target} is not a voter (voters: {sorted(self._addresses)}); use -1 for any"
            )
        status = self._runtime.status()
        if status.role is not Role.LEADER:
            raise self._active.not_controller()
        if target == self._runtime.node_id:
            return pb.TransferLeadershipResponse(new_leader_id=target, term=status.term)
        try:
            self._runtime.transfer_leadership(None if target == -1 else NodeId(target))
        except NotLeader:
            raise self._active.not_controller() from None
        timeout_s = max(2.0, 40 * self._tick_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            status = self._runtime.status()
            if status.leader_id is not None and status.leader_id != self._runtime.node_id:
                return pb.TransferLeadershipResponse(
                    new_leader_id=status.leader_id, term=status.term
                )
            await asyncio.sleep(self._tick_s)
        raise RequestTimedOutError(
            f"leadership did not move within {timeout_s:g}s (is the target up and caught up?); "
            f"node {self._runtime.node_id} still leads"
        )

    # ---- broker lifecycle ----

    @rpc_errors
    async def RegisterBroker(
        self, request: pb.RegisterBrokerRequest, context: Context
    ) -> pb.RegisterBrokerResponse:
        manager = self._sessions.manager
        return await self._active.write(
            lambda image, index: manager.register_broker(
                image, request, next_index=index, now_ms=monotonic_ms()
            )
        )

    @rpc_errors
    async def BrokerHeartbeat(
        self, request: pb.BrokerHeartbeatRequest, context: Context
    ) -> pb.BrokerHeartbeatResponse:
        if not await FAULTS.admit(FaultPath.HEARTBEAT, request.broker_id, Direction.INBOUND):
            raise NetworkError(
                f"heartbeat from broker {request.broker_id} dropped by fault injection"
            )
        require_items(len(request.unreachable_brokers), "unreachable_brokers", empty_means_all=True)
        manager = self._sessions.manager
        response: pb.BrokerHeartbeatResponse = await self._active.write(
            lambda image, index: manager.heartbeat(
                image, request, next_index=index, now_ms=monotonic_ms()
            )
        )
        response.controller_id = self._runtime.node_id
        if request.unreachable_brokers and not response.is_fenced:
            self._sessions.report_unreachable(
                request.broker_id,
                [(b.broker_id, b.broker_epoch) for b in request.unreachable_brokers],
            )
        return response

    @rpc_errors
    async def AllocateProducerIds(
        self, request: pb.AllocateProducerIdsRequest, context: Context
    ) -> pb.AllocateProducerIdsResponse:
        return await self._active.write(lambda image, _i: allocate_producer_ids(image, request))

    @rpc_errors
    async def AlterPartition(
        self, request: pb.AlterPartitionRequest, context: Context
    ) -> pb.AlterPartitionResponse:
        require_items(sum(len(t.partitions) for t in request.topics), "topics[].partitions")
        return await self._active.write(lambda image, _i: alter_partition(image, request))

    # ---- metadata stream ----

    async def WatchMetadata(
        self, request: pb.WatchMetadataRequest, context: Context
    ) -> AsyncIterator[pb.MetadataEvent]:
        if request.after_index < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after_index must be >= 0")
        # Nodes get the whole log; others need DESCRIBE on the cluster and see no ACL,
        # credential or quota records.
        whole = self._guard.is_node()
        if not whole:
            error = self._guard.denial(OP_DESCRIBE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
            if error is not None:
                context.set_trailing_metadata(trailing_metadata_for(error))
                await context.abort(status_for(error), error.message)
        async for event in self._state.watch(request.after_index):
            yield event if whole else without_security_records(event)
