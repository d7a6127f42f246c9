"""The gRPC BrokerService: Metadata, Produce, Fetch, ListOffsets and InitProducerId.

Transport only: requests are translated into calls on the hosted
:class:`~raftka.broker.partition.Partition` (found through the ReplicaManager) and results
and errors back into protobuf. Produce is produce_handler.py's and Fetch fetch_handler.py's
(answered through the hand-written FetchResponse codec: registration.py); the small listing
and producer-id calls are answered here. InitProducerId with a transactional id is the
transaction coordinator's (injected by the server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeAlias

import grpc
from prometheus_client import CollectorRegistry

from raftka.broker.clients import ClientLog
from raftka.broker.fetch_handler import FetchHandler
from raftka.broker.isolation import require_isolation_level
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.metrics import TopicTraffic
from raftka.broker.pipelined import in_order
from raftka.broker.produce_handler import ProduceHandler
from raftka.broker.producers.id_blocks import ProducerIdManager
from raftka.broker.producers.owners import ProducerOwners
from raftka.broker.producers.rights import require_producer_id_rights
from raftka.broker.quotas.manager import CallerSensors, QuotaManager, quota_user
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.request_checks import (
    optional_epoch,
    require_distinct,
    set_error,
    topic_refusals,
)
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.clock import monotonic_ms
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.limits import require_items
from raftka.common.rpc.fetch_wire import FetchAnswer
from raftka.common.rpc.produce_wire import ProduceCall
from raftka.common.rpc.status import rpc_errors, stream_rpc_errors
from raftka.common.security.caller import current_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.model import (
    OP_DESCRIBE,
    OP_READ,
    RESOURCE_TOPIC,
)
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceServicer
from raftka.v1.common_pb2 import ErrorCode

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

InitTransactionalProducer = Callable[[str, int], Awaitable[tuple[int, int]]]
"""InitProducerId for a transactional id, answered by its transaction coordinator:
``(transactional_id, transaction_timeout_ms) -> (producer_id, producer_epoch)``; raises the
coordinator's errors (NOT_COORDINATOR, CONCURRENT_TRANSACTIONS, ...)."""


PRODUCE_STREAM_IN_FLIGHT = 16
"""Requests of one ProduceStream worked on at once (a producer keeps at most 5 in flight)."""


class BrokerServicer(BrokerServiceServicer):
    def __init__(
        self,
        *,
        cluster_id: str,
        replicas: ReplicaManager,
        follower: MetadataFollower,
        producer_ids: ProducerIdManager,
        controller_addresses: Sequence[str] = (),
        active_controller: Callable[[], int] = lambda: -1,
        init_transactional_producer: InitTransactionalProducer | None = None,
        txn_writes: TxnWriteVerifier | None = None,
        guard: AccessGuard = OPEN_GUARD,
        quotas: QuotaManager | None = None,
        traffic: TopicTraffic | None = None,
    ) -> None:
        """``controller_addresses``: where this broker reaches the controllers, told to
        clients; ``active_controller``: the id of the controller that last answered it;
        ``init_transactional_producer``: the transaction coordinator's InitProducerId (None:
        this broker has no transaction coordinator, and a transactional id is answered
        COORDINATOR_NOT_AVAILABLE); ``txn_writes``: the check of transactional writes with
        their coordinator (KIP-890 part 1; None: transactional batches are taken unchecked);
        ``guard``: the authorization checks (with authorization on, producer ids are also
        bound to the principal that got or first used them: producers/owners.py);
        ``quotas``: the client quotas (default: those of the followed metadata image);
        ``traffic``: the bytes-in/out counters (a private set when None)."""
        self._guard = guard
        self._owners = ProducerOwners() if guard.enabled else None
        self._traffic = traffic if traffic is not None else TopicTraffic(CollectorRegistry())
        self._init_transactional_producer = init_transactional_producer
        self._controller_addresses = list(controller_addresses)
        self._active_controller = active_controller
        self._producer_ids = producer_ids
        self._cluster_id = cluster_id
        self._replicas = replicas
        self._follower = follower
        self._clients = ClientLog()
        self._quotas = quotas or QuotaManager(lambda: follower.image.security)
        self._produce = ProduceHandler(
            replicas=replicas,
            guard=guard,
            owners=self._owners,
            txn_writes=txn_writes,
            quotas=self._quotas,
            traffic=self._traffic,
        )
        self._fetch = FetchHandler(
            replicas=replicas, guard=guard, quotas=self._quotas, traffic=self._traffic
        )

    @property
    def owners(self) -> ProducerOwners | None:
        """Who got or first used each producer id (authorization on), shared with the Kafka
        listener's Produce and InitProducerId."""
        return self._owners

    @property
    def quotas(self) -> QuotaManager:
        """The client quotas, shared with the Kafka listener."""
        return self._quotas

    def _quota_sensors(self, client_id: str) -> CallerSensors:
        return self._quotas.sensors(
            quota_user(current_caller().principal), client_id, monotonic_ms()
        )

    # ---- metadata ----

    @rpc_errors
    async def Metadata(self, request: pb.MetadataRequest, context: Context) -> pb.MetadataResponse:
        self._clients.saw(context, "Metadata")
        require_items(len(request.topics), "topics", empty_means_all=True)
        image = self._follower.image
        response = pb.MetadataResponse(
            cluster_id=self._cluster_id,
            controller_id=self._active_controller(),
            metadata_index=self._follower.index,
            controller_addresses=self._controller_addresses,
        )
        for reg in image.unfenced_brokers():
            endpoint = reg.client_endpoint()
            if endpoint is not None:
                response.brokers.append(
                    pb.BrokerNode(
                        broker_id=reg.broker_id,
                        host=endpoint.host,
                        port=endpoint.port,
                        rack=reg.rack,
                    )
                )
        if request.brokers_only:
            return response
        fenced = {b for b, reg in image.brokers.items() if reg.fenced}
        names = list(dict.fromkeys(request.topics))
        # Named topics the caller may not describe are refused; a listing leaves them out.
        refused = topic_refusals(self._guard, OP_DESCRIBE, names)
        if not names:
            allowed = self._guard.allowed_quietly
            names = [n for n in image.topic_names() if allowed(OP_DESCRIBE, RESOURCE_TOPIC, n)]
        for name in names:
            topic = image.topic(name)
            if name in refused:
                response.topics.append(pb.TopicMetadata(name=name, error_code=refused[name].code))
                continue
            if topic is None:
                response.topics.append(
                    pb.TopicMetadata(name=name, error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
                )
                continue
            meta = pb.TopicMetadata(name=name, topic_id=topic.topic_id)
            for pid in sorted(topic.partitions):
                state = topic.partitions[pid]
                meta.partitions.append(
                    pb.PartitionMetadata(
                        partition=pid,
                        error_code=ErrorCode.NONE
                        if state.leader >= 0
                        else ErrorCode.LEADER_NOT_AVAILABLE,
                        leader_id=state.leader,
                        leader_epoch=state.leader_epoch,
                        replicas=state.replicas,
                        isr=state.isr,
                        offline_replicas=[
                            r for r in state.replicas if r in fenced or r not in image.brokers
                        ],
                    )
                )
            response.topics.append(meta)
        return response

    # ---- produce and fetch ----

    @rpc_errors
    async def Produce(  # type: ignore[override]  # the registered deserializer makes it
        self, request: ProduceCall, context: Context
    ) -> pb.ProduceResponse:
        """``request`` as common/rpc/produce_wire.py reads it (registration.py)."""
        client_id = self._clients.saw(context, "Produce")
        return await self._produce.handle(request, self._quota_sensors(client_id))

    @stream_rpc_errors
    async def ProduceStream(  # type: ignore[override]  # the registered deserializer makes it
        self, requests: AsyncIterator[ProduceCall], context: Context
    ) -> AsyncIterator[pb.ProduceResponse]:
        """Each request answered as Produce answers it, in order, up to
        PRODUCE_STREAM_IN_FLIGHT worked on at once."""
        client_id = self._clients.saw(context, "ProduceStream")

        def produce(request: ProduceCall) -> Awaitable[pb.ProduceResponse]:
            return self._produce.handle(request, self._quota_sensors(client_id))

        async for answer in in_order(requests, produce, max_in_flight=PRODUCE_STREAM_IN_FLIGHT):
            yield answer

    @rpc_errors
    async def Fetch(  # type: ignore[override]  # the registered serializer takes either
        self, request: pb.FetchRequest, context: Context
    ) -> FetchAnswer | pb.FetchResponse:
        """Answers a FetchAnswer (written by fetch_wire.py: registration.py), or the generated
        class for the decoded-records form."""
        wanted = self._fetch.wanted(request)
        if request.HasField("replica_id") and request.replica_id >= 0:
            return await self._fetch.for_follower(request, wanted)
        client = self._clients.saw(context, "Fetch")
        refused = topic_refusals(self._guard, OP_READ, (t for t, _ in wanted))
        return await self._fetch.for_consumer(request, wanted, refused, self._quota_sensors(client))

    @stream_rpc_errors
    async def ReplicaFetchStream(  # type: ignore[override]  # the registered serializer
        self, requests: AsyncIterator[pb.FetchRequest], context: Context
    ) -> AsyncIterator[FetchAnswer | pb.FetchResponse]:
        """A follower's fetches, one answer per request, in order (each as Fetch answers)."""
        async for request in requests:
            if not request.HasField("replica_id") or request.replica_id < 0:
                raise InvalidRequestError(
                    "ReplicaFetchStream is for followers: each request needs replica_id >= 0 "
                    "(consumers use Fetch)"
                )
            yield await self._fetch.for_follower(request, self._fetch.wanted(request))

    # ---- list offsets ----

    @rpc_errors
    async def ListOffsets(
        self, request: pb.ListOffsetsRequest, context: Context
    ) -> pb.ListOffsetsResponse:
        named = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
        require_items(len(named), "topics[].partitions", empty_means_all=True)
        require_distinct(named, "the ListOffsets request")
        require_isolation_level(request.isolation_level)
        response = pb.ListOffsetsResponse()
        refused = topic_refusals(self._guard, OP_DESCRIBE, (t.topic for t in request.topics))
        for t in request.topics:
            for p in t.partitions:
                result = pb.ListOffsetsResult(
                    topic=t.topic, partition=p.partition, timestamp=-1, offset=-1, leader_epoch=-1
                )
                epoch = optional_epoch(p, "current_leader_epoch")
                try:
                    if t.topic in refused:
                        raise refused[t.topic]
                    partition = self._fetch.leader_partition(t.topic, p.partition, epoch)
                    found = await partition.list_offset(
                        p.timestamp,
                        current_leader_epoch=epoch,
                        isolation_level=request.isolation_level,
                    )
                    result.leader_epoch = partition.leader_epoch
                    if found is not None:
                        result.offset, result.timestamp = found
                except RaftkaError as e:
                    set_error(result, e)
                response.results.append(result)
        return response

    # ---- producer ids ----

    @rpc_errors
    async def InitProducerId(
        self, request: pb.InitProducerIdRequest, context: Context
    ) -> pb.InitProducerIdResponse:
        require_producer_id_rights(self._guard, request.transactional_id)
        if request.transactional_id:
            if self._init_transactional_producer is None:
                raise CoordinatorNotAvailableError(
                    f"broker has no transaction coordinator for transactional id "
                    f"{request.transactional_id!r}; retry later, or leave transactional_id "
                    "empty for an idempotent producer"
                )
            producer_id, producer_epoch = await self._init_transactional_producer(
                request.transactional_id, request.transaction_timeout_ms
            )
            return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=producer_epoch)
        producer_id = await self._producer_ids.next_id()
        if self._owners is not None:
            self._owners.issued(producer_id, current_caller().principal)
        return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)
