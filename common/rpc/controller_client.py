"""An asyncio client for the controller quorum's admin service.

It owns leader redirection: a call goes to the controller believed active; NOT_CONTROLLER
answers name the active one and the call is retried there; an unreachable controller makes it
try the next address. Everything happens within one deadline per call, with backoff between
attempts (raftka.common.rpc.retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import grpc
import structlog

from raftka.common import errors
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.common.security.tls import ChannelSecurity
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.controller_pb2_grpc import ControllerServiceStub

log = structlog.get_logger(__name__)

R = TypeVar("R")
S = TypeVar("S")


class ControllerClient:
    def __init__(
        self,
        bootstrap: Sequence[str],
        *,
        timeout_s: float = 15.0,
        attempt_timeout_s: float = 5.0,
        retry: RetryPolicy | None = None,
        discover: Callable[[], Awaitable[Sequence[str]]] | None = None,
        security: ChannelSecurity | None = None,
    ) -> None:
        """``bootstrap``: controller addresses (host:port). Without them, ``discover`` is
        called once, before the first request, to find them (e.g. by asking a broker)."""
        if not bootstrap and discover is None:
            raise ValueError("at least one controller address is needed (host:port)")
        self._addresses = list(dict.fromkeys(bootstrap))
        self._discover = discover
        self._discovering = asyncio.Lock()
        self._timeout_s = timeout_s
        self._attempt_timeout_s = attempt_timeout_s
        self._retry = retry or RetryPolicy()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._preferred = self._addresses[0] if self._addresses else ""
        self._security = security

    async def __aenter__(self) -> ControllerClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            await channel.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = open_channel(address, security=self._security)
            self._channels[address] = channel
        return channel

    async def call(
        self,
        invoke: Callable[[ControllerServiceStub, float], Awaitable[R]],
        *,
        timeout_s: float | None = None,
        any_controller: bool = False,
    ) -> R:
        """:meth:`call_service` on the ControllerService."""
        return await self.call_service(
            ControllerServiceStub, invoke, timeout_s=timeout_s, any_controller=any_controller
        )

    async def call_service(
        self,
        stub_type: Callable[[grpc.aio.Channel], S],
        invoke: Callable[[S, float], Awaitable[R]],
        *,
        timeout_s: float | None = None,
        any_controller: bool = False,
    ) -> R:
        """Run ``invoke(stub, per_attempt_timeout)`` against the active controller (or, with
        ``any_controller``, the first that answers), redirecting and retrying until the deadline.
        Each attempt gets at most ``attempt_timeout_s``, so a hung (e.g. paused) controller
        costs one attempt, not the whole deadline. ``stub_type`` picks the service (the
        ControllerService, AclServiceStub, UserServiceStub, ...)."""
        if not self._addresses:
            await self._find_controllers()
        deadline = Deadline(timeout_s if timeout_s is not None else self._timeout_s)
        attempt = 0
        last_error: errors.RaftkaError | None = None
        tried_since_progress: set[str] = set()
        address = self._preferred
        while True:
            attempt += 1
            try:
                attempt_timeout = min(self._attempt_timeout_s, deadline.remaining())
                result = await invoke(stub_type(self._channel(address)), max(0.05, attempt_timeout))
                self._preferred = address
                return result
            except grpc.aio.AioRpcError as e:
                error = error_from_rpc(e, target=address)
                last_error = error
                if not error.retriable:
                    raise error from None
                tried_since_progress.add(address)
                if isinstance(error, errors.NotControllerError) and error.leader_address:
                    if error.leader_address not in self._addresses:
                        self._addresses.append(error.leader_address)
                    if error.leader_address not in tried_since_progress:
                        address = error.leader_address
                        continue
                address = self._next_address(address)
                if any_controller and address not in tried_since_progress:
                    continue
                if len(tried_since_progress) >= len(self._addresses):
                    tried_since_progress.clear()
            if deadline.expired():
                break
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))
            if deadline.expired():
                break
        assert last_error is not None
        raise errors.RequestTimedOutError(
            f"no active controller answered within {deadline_text(self._timeout_s if timeout_s is None else timeout_s)} "
            f"(tried {', '.join(self._addresses)}); last error: {last_error.message}. "
            "Is the cluster running? Try `raftka up`."
        )

    async def _find_controllers(self) -> None:
        async with self._discovering:
            if self._addresses or self._discover is None:
                return
            found = list(dict.fromkeys(await self._discover()))
            if not found:
                raise errors.RaftkaError(
                    "no controller address was found: pass the controllers' addresses"
                )
            self._addresses = found
            self._preferred = found[0]
            log.info("controllers_discovered", addresses=found)

    def _next_address(self, current: str) -> str:
        index = self._addresses.index(current) if current in self._addresses else -1
        return self._addresses[(index + 1) % len(self._addresses)]

    # ---- typed helpers ----

    async def create_topics(
        self, topics: Sequence[pb.NewTopic], *, validate_only: bool = False
    ) -> list[pb.CreateTopicResult]:
        """Creates ``topics``. A create whose answer was lost (a timeout) is sent again; when
        the retry finds a topic of the shape asked for, the first attempt made it, and it is
        reported as created (Kafka's clients report TopicExistsException there instead)."""
        request = pb.CreateTopicsRequest(topics=list(topics), validate_only=validate_only)
        attempts = 0

        def invoke(stub: ControllerServiceStub, timeout: float) -> Awaitable[Any]:
            nonlocal attempts
            attempts += 1
            return stub.CreateTopics(request, timeout=timeout)  # type: ignore[no-any-return]

        response: pb.CreateTopicsResponse = await self.call(invoke)
        results = list(response.results)
        if attempts > 1 and not validate_only:
            results = await self._settle_retried_creates(list(topics), results)
        return results

    async def _settle_retried_creates(
        self, asked: list[pb.NewTopic], results: list[pb.CreateTopicResult]
    ) -> list[pb.CreateTopicResult]:
        exists = [r.name for r in results if r.error_code == cpb.TOPIC_ALREADY_EXISTS]
        if not exists:
            return results
        found = {d.name: d for d in await self.describe_topics(exists)}
        by_name = {n.name: n for n in asked}
        settled = []
        for result in results:
            topic = found.get(result.name)
            if topic is not None and result.error_code == cpb.TOPIC_ALREADY_EXISTS:
                want = by_name[result.name]
                partitions = len(topic.partitions)
                replicas = {len(p.replicas) for p in topic.partitions}
                if (want.num_partitions in (0, partitions)) and (
                    want.replication_factor == 0 or replicas == {want.replication_factor}
                ):
                    log.info("retried_create_found_its_topic", topic=result.name)
                    result = pb.CreateTopicResult(
                        name=result.name,
                        topic_id=topic.topic_id,
                        error_code=cpb.NONE,
                        num_partitions=partitions,
                        replication_factor=min(replicas) if replicas else 0,
                    )
            settled.append(result)
        return settled

    async def delete_topics(self, names: Sequence[str]) -> list[pb.TopicResult]:
        request = pb.DeleteTopicsRequest(names=list(names))
        response = await self.call(lambda s, t: s.DeleteTopics(request, timeout=t))
        return list(response.results)

    async def create_partitions(
        self, updates: dict[str, int], *, validate_only: bool = False
    ) -> list[pb.TopicResult]:
        request = pb.CreatePartitionsRequest(
            topics=[pb.PartitionCountUpdate(name=n, total_count=c) for n, c in updates.items()],
            validate_only=validate_only,
        )
        response = await self.call(lambda s, t: s.CreatePartitions(request, timeout=t))
        return list(response.results)

    async def describe_topics(self, names: Sequence[str] = ()) -> list[pb.TopicDescription]:
        request = pb.DescribeTopicsRequest(names=list(names))
        response = await self.call(lambda s, t: s.DescribeTopics(request, timeout=t))
        return list(response.topics)

    async def describe_cluster(self) -> pb.DescribeClusterResponse:
        return await self.call(
            lambda s, t: s.DescribeCluster(pb.DescribeClusterRequest(), timeout=t)
        )

    async def describe_quorum(self, *, allow_follower: bool = False) -> pb.DescribeQuorumResponse:
        """The leader's view of the quorum; with ``allow_follower``, whichever node answers."""
        request = pb.DescribeQuorumRequest(allow_follower=allow_follower)
        return await self.call(lambda s, t: s.DescribeQuorum(request, timeout=t))

    async def describe_configs(
        self, resources: Sequence[pb.ConfigResource]
    ) -> list[pb.ConfigResourceResult]:
        request = pb.DescribeConfigsRequest(resources=list(resources))
        response = await self.call(lambda s, t: s.DescribeConfigs(request, timeout=t))
        return list(response.results)

    async def alter_configs(
        self, resources: Sequence[pb.AlterConfigResource], *, validate_only: bool = False
    ) -> list[pb.ConfigResourceResult]:
        request = pb.AlterConfigsRequest(resources=list(resources), validate_only=validate_only)
        response = await self.call(lambda s, t: s.AlterConfigs(request, timeout=t))
        return list(response.results)

    async def transfer_leadership(self, target_node_id: int = -1) -> pb.TransferLeadershipResponse:
        request = pb.TransferLeadershipRequest(target_node_id=target_node_id)
        return await self.call(lambda s, t: s.TransferLeadership(request, timeout=t))

    async def elect_leaders(
        self,
        election_type: pb.ElectionType.ValueType = pb.ELECTION_TYPE_PREFERRED,
        partitions: Sequence[tuple[str, int]] = (),
        *,
        topics: Sequence[str] = (),
    ) -> list[pb.TopicElectionResult]:
        """Preferred or unclean elections for ``(topic, partition)`` pairs and every partition
        of ``topics``; for every partition of the cluster when both are empty (results then
        leave out the partitions that needed no election)."""
        by_topic: dict[str, list[int]] = {t: [] for t in topics}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        request = pb.ElectLeadersRequest(
            election_type=election_type,
            topic_partitions=[
                pb.TopicPartitions(topic=t, partitions=p) for t, p in by_topic.items()
            ],
        )
        response = await self.call(lambda s, t: s.ElectLeaders(request, timeout=t))
        return list(response.results)

    async def alter_partition_reassignments(
        self, targets: Mapping[tuple[str, int], Sequence[int] | None]
    ) -> list[pb.ReassignableTopicResult]:
        """Reassign each ``(topic, partition)`` to its target replicas, or cancel its
        reassignment when the target is None."""
        by_topic: dict[str, list[pb.ReassignablePartition]] = {}
        for (topic, partition), replicas in targets.items():
            by_topic.setdefault(topic, []).append(
                pb.ReassignablePartition(
                    partition=partition, replicas=list(replicas or ()), cancel=replicas is None
                )
            )
        request = pb.AlterPartitionReassignmentsRequest(
            topics=[pb.ReassignableTopic(name=n, partitions=p) for n, p in by_topic.items()]
        )
        response = await self.call(lambda s, t: s.AlterPartitionReassignments(request, timeout=t))
        return list(response.results)

    async def list_partition_reassignments(
        self, topics: Sequence[str] = ()
    ) -> list[pb.OngoingReassignment]:
        """Reassignments in progress among ``topics`` (every topic when empty)."""
        request = pb.ListPartitionReassignmentsRequest(
            topics=[pb.TopicPartitions(topic=t) for t in topics]
        )
        response = await self.call(lambda s, t: s.ListPartitionReassignments(request, timeout=t))
        return list(response.reassignments)

    async def alter_partition(
        self, request: pb.AlterPartitionRequest, *, timeout_s: float | None = None
    ) -> pb.AlterPartitionResponse:
        """Sent by a partition leader (see AlterPartitionRequest in controller.proto). A
        partition answered with NOT_CONTROLLER should be retried after a backoff."""
        return await self.call(
            lambda s, t: s.AlterPartition(request, timeout=t), timeout_s=timeout_s
        )

    async def allocate_producer_ids(
        self, broker_id: int, broker_epoch: int
    ) -> pb.AllocateProducerIdsResponse:
        """Sent by a broker: a new block of producer ids, [first_producer_id,
        first_producer_id + count)."""
        request = pb.AllocateProducerIdsRequest(broker_id=broker_id, broker_epoch=broker_epoch)
        return await self.call(lambda s, t: s.AllocateProducerIds(request, timeout=t))

    def watch_metadata(self, after_index: int, attempt: int = 0) -> Any:
        """Open a WatchMetadata stream. Any controller serves it: the first attempt goes to the
        preferred one, retries walk through the known addresses."""
        address = self._addresses[attempt % len(self._addresses)] if attempt else self._preferred
        return ControllerServiceStub(self._channel(address)).WatchMetadata(
            pb.WatchMetadataRequest(after_index=after_index)
        )

    async def call_any(
        self, invoke: Callable[[ControllerServiceStub, float], Awaitable[Any]]
    ) -> Any:
        return await self.call(invoke, any_controller=True)


def deadline_text(seconds: float) -> str:
    return f"{seconds:g}s"
