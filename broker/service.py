"""The gRPC BrokerService: Metadata, Produce, Fetch, ListOffsets and InitProducerId.

Transport only: requests are translated into calls on the hosted
:class:`~raftka.broker.partition.Partition` (found through the ReplicaManager) and results
and errors back into protobuf. Per-partition problems go into that partition's result (error
code + message); the others in the request still proceed. The bytes of produced batches are
stored as they are, and fetches return stored bytes as they are.

Transactions: a read_committed fetch stops at the last stable offset and names the aborted
transactions in what it returns; its decoded-records form drops their records itself (and
control records at either isolation level: a marker is not application data). InitProducerId
with a transactional id is the transaction coordinator's (injected by the server). Before a
producer's first transactional write to a partition in a transaction, the leader verifies with
the coordinator that the partition is in it (transactions/verification.py, KIP-890 part 1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, TypeAlias

import grpc
from prometheus_client import CollectorRegistry

from raftka.broker.clients import ClientLog
from raftka.broker.isolation import READ_COMMITTED, require_isolation_level
from raftka.broker.log.leader_epoch_cache import EpochEndOffset
from raftka.broker.log.validator import NO_TIMESTAMP
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.metrics import TopicTraffic
from raftka.broker.partition import (
    FencedLeaderEpochError,
    NotLeaderOrFollowerError,
    Partition,
    check_current_leader_epoch,
)
from raftka.broker.producers.id_blocks import ProducerIdManager
from raftka.broker.producers.owners import ProducerOwners
from raftka.broker.quotas.manager import NO_SENSORS, CallerSensors, QuotaManager, quota_user
from raftka.broker.quotas.throttling import throttle_ms, wait_unmuted
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.clock import monotonic_ms, wall_clock_ms
from raftka.common.errors import (
    InvalidRequestError,
    InvalidTopicError,
    NetworkError,
    RaftkaError,
)
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.limits import require_items
from raftka.common.metadata.topic_names import INTERNAL_TOPICS
from raftka.common.records.batch import (
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    Compression,
)
from raftka.common.records.builder import build_batch
from raftka.common.records.errors import (
    InvalidRecordError,
    InvalidTimestampError,
    UnsupportedCompressionError,
)
from raftka.common.records.visibility import visible_records
from raftka.common.rpc.status import rpc_errors
from raftka.common.security.caller import current_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_DESCRIBE,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.common.storage.errors import LogOffsetOutOfRangeError
from raftka.common.storage.txn_index import AbortedTxn
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceServicer
from raftka.v1.common_pb2 import ErrorCode

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

INT16_MAX = 32767

VALID_ACKS = (0, 1, -1)
DEFAULT_FETCH_MAX_BYTES = 50 * 1024 * 1024
MAX_FETCH_RESPONSE_BYTES = 55 * 1024 * 1024
"""The most batch bytes one Fetch answer holds, whatever its max_bytes says (Kafka's broker
``fetch.max.bytes``; below the 64 MiB gRPC message limit), plus at most one batch."""
DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024
DEFAULT_PRODUCE_TIMEOUT_MS = 30_000
NOTHING_REFUSED: Mapping[str, RaftkaError] = MappingProxyType({})


def _set_error(
    result: pb.PartitionProduceResult | pb.FetchPartitionResult | pb.ListOffsetsResult,
    error: RaftkaError,
) -> None:
    """Record a per-partition error: its code, its message and, when this broker is not the
    leader, the leader it knows."""
    result.error_code = error.code
    result.error_message = error.message
    if isinstance(error, NotLeaderOrFollowerError | FencedLeaderEpochError) and not isinstance(
        result, pb.ListOffsetsResult
    ):
        result.current_leader.CopyFrom(
            pb.LeaderHint(leader_id=error.leader_id, leader_epoch=error.leader_epoch)
        )


def fetch_response_budget(max_bytes: int) -> int:
    """The batch bytes a Fetch answer may hold: the request's ``max_bytes``, 50 MiB when
    unset (0 or negative), never more than MAX_FETCH_RESPONSE_BYTES."""
    return min(max_bytes, MAX_FETCH_RESPONSE_BYTES) if max_bytes > 0 else DEFAULT_FETCH_MAX_BYTES


def _require_distinct(partitions: Iterable[tuple[str, int]], request: str) -> None:
    """A request names each partition at most once (one answer per partition, and no way to
    make the broker read or write the same partition many times for one request)."""
    seen: set[tuple[str, int]] = set()
    for tp in partitions:
        if tp in seen:
            raise InvalidRequestError(
                f"{request} names {tp[0]}-{tp[1]} more than once: name each partition once"
            )
        seen.add(tp)


def _epoch(message: pb.FetchPartition | pb.ListOffsetsPartition, field: str) -> int | None:
    """An optional epoch field: None when unset."""
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[arg-type]


InitTransactionalProducer = Callable[[str, int], Awaitable[tuple[int, int]]]
"""InitProducerId for a transactional id, answered by its transaction coordinator:
``(transactional_id, transaction_timeout_ms) -> (producer_id, producer_epoch)``; raises the
coordinator's errors (NOT_COORDINATOR, CONCURRENT_TRANSACTIONS, ...)."""


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
        self._txn_writes = txn_writes
        self._controller_addresses = list(controller_addresses)
        self._active_controller = active_controller
        self._producer_ids = producer_ids
        self._cluster_id = cluster_id
        self._replicas = replicas
        self._follower = follower
        self._clients = ClientLog()
        self._quotas = quotas or QuotaManager(lambda: follower.image.security)

    def _quota_sensors(self, client_id: str) -> CallerSensors:
        return self._quotas.sensors(
            quota_user(current_caller().principal), client_id, monotonic_ms()
        )

    def _leader_partition(self, topic: str, partition: int, epoch: int | None) -> Partition:
        """The partition if this broker leads it. Otherwise, as Kafka checks the leader epoch
        first (KIP-320): FENCED_LEADER_EPOCH for an ``epoch`` older than the one this broker
        knows, UNKNOWN_LEADER_EPOCH for a newer one (this broker is behind), else
        NOT_LEADER_OR_FOLLOWER."""
        try:
            return self._replicas.leader_partition(topic, partition)
        except NotLeaderOrFollowerError as e:
            if e.leader_epoch >= 0:
                check_current_leader_epoch(
                    epoch, e.leader_epoch, f"{topic}-{partition}", leader_id=e.leader_id
                )
            raise

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
        refused = self._refusals(OP_DESCRIBE, names)
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

    # ---- produce ----

    @rpc_errors
    async def Produce(self, request: pb.ProduceRequest, context: Context) -> pb.ProduceResponse:
        client_id = self._clients.saw(context, "Produce")
        sensors = self._quota_sensors(client_id)
        if sensors is NO_SENSORS:
            return await self._produce(request)
        await wait_unmuted(sensors.produce, sensors.request)
        started = time.monotonic()
        response = await self._produce(request)
        throttle = throttle_ms(
            self._quotas,
            sensors,
            sensors.produce,
            request.ByteSize(),
            (time.monotonic() - started) * 1000,
        )
        if throttle > 0:
            # Kafka's delayed response: the records are written; the answer waits.
            await asyncio.sleep(throttle / 1000)
            response.throttle_time_ms = throttle
        return response

    async def _produce(self, request: pb.ProduceRequest) -> pb.ProduceResponse:
        named = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
        require_items(len(named), "topics[].partitions", empty_means_all=True)
        _require_distinct(named, "the Produce request")
        if request.acks not in VALID_ACKS:
            response = pb.ProduceResponse()
            for topic, partition in named:
                response.results.append(
                    pb.PartitionProduceResult(
                        topic=topic,
                        partition=partition,
                        error_code=ErrorCode.INVALID_REQUIRED_ACKS,
                        error_message=f"acks must be 0, 1 or -1 (all), not {request.acks}; "
                        "nothing was written",
                        base_offset=-1,
                        log_append_time_ms=-1,
                        log_start_offset=-1,
                    )
                )
            return response
        timeout_s = (
            request.timeout_ms if request.timeout_ms > 0 else DEFAULT_PRODUCE_TIMEOUT_MS
        ) / 1000
        refused = self._produce_refusals(request)
        jobs = [
            self._produce_one(
                t.topic, p, request.acks, timeout_s, request.transactional_id, refused
            )
            for t in request.topics
            for p in t.partitions
        ]
        # One partition (the common case for a batching producer) needs no task per partition.
        results = [await jobs[0]] if len(jobs) == 1 else await asyncio.gather(*jobs)
        if request.acks == 0:
            return pb.ProduceResponse()
        return pb.ProduceResponse(results=results)

    async def _produce_one(
        self,
        topic: str,
        data: pb.PartitionProduceData,
        acks: int,
        timeout_s: float,
        transactional_id: str,
        refused: Mapping[str, RaftkaError] = NOTHING_REFUSED,
    ) -> pb.PartitionProduceResult:
        result = pb.PartitionProduceResult(
            topic=topic,
            partition=data.partition,
            base_offset=-1,
            log_append_time_ms=-1,
            log_start_offset=-1,
        )
        try:
            if topic in refused:
                raise refused[topic]
            if topic in INTERNAL_TOPICS:
                raise InvalidTopicError(
                    f"{topic} is an internal topic: only its coordinator writes it (commit "
                    "offsets with GroupService.OffsetCommit, run transactions with "
                    "TransactionService); nothing was written"
                )
            partition = self._replicas.leader_partition(topic, data.partition)
            payload = self._batches_of(data)
            if self._owners is not None:
                table = partition.log.producer_state
                self._owners.check_write(
                    partition.log,
                    payload,
                    current_caller().principal,
                    lambda pid: table.entry(pid) is not None,
                    name=f"{topic}-{data.partition}",
                )
            if self._txn_writes is not None:
                await self._txn_writes.check(
                    topic, data.partition, transactional_id, payload, partition.log.producer_state
                )
            appended = await partition.append(payload, acks=acks, timeout_s=timeout_s)
            if self._owners is not None:
                self._owners.written(partition.log, payload, current_caller().principal)
            self._traffic.bytes_in(topic, len(payload))
            result.base_offset = appended.base_offset
            result.log_append_time_ms = appended.log_append_time_ms
            result.log_start_offset = appended.log_start_offset
        except RaftkaError as e:
            _set_error(result, e)
        return result

    def _produce_refusals(self, request: pb.ProduceRequest) -> dict[str, RaftkaError]:
        """The topics the caller may not write, with the error each partition reports: for a
        transactional produce, first WRITE on the transactional id (every topic), then WRITE
        on each topic (Kafka's order)."""
        guard = self._guard
        if not guard.enabled:
            return {}
        topics = dict.fromkeys(t.topic for t in request.topics)
        if request.transactional_id:
            error = guard.denial(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
            if error is not None:
                return dict.fromkeys(topics, error)
        refused = {t: guard.denial(OP_WRITE, RESOURCE_TOPIC, t) for t in topics}
        return {t: e for t, e in refused.items() if e is not None}

    @staticmethod
    def _batches_of(data: pb.PartitionProduceData) -> bytes:
        if data.batches and data.records:
            raise InvalidRequestError("set either batches or records for a partition, not both")
        if data.batches and (data.HasField("producer_id") or data.transactional):
            raise InvalidRequestError(
                "producer_id and transactional are for the records form: a batch carries its "
                "own producer id and transactional attribute"
            )
        if data.transactional and not data.HasField("producer_id"):
            raise InvalidRequestError(
                "transactional records need producer_id, producer_epoch and base_sequence: "
                "the producer id and epoch of the transactional producer (InitProducerId with "
                "its transactional id)"
            )
        if data.records:
            stamp = wall_clock_ms()
            for r in data.records:
                if r.timestamp_ms < NO_TIMESTAMP:
                    raise InvalidTimestampError(
                        f"record timestamp {r.timestamp_ms} is negative: use milliseconds since "
                        "the epoch, 0 for now, or -1 for no timestamp"
                    )
            records = [
                (
                    r.timestamp_ms or stamp,
                    r.key if r.HasField("key") else None,
                    r.value if r.HasField("value") else None,
                    tuple((h.key, h.value if h.HasField("value") else None) for h in r.headers),
                )
                for r in data.records
            ]
            try:
                codec = Compression(int(data.compression))
            except ValueError:
                raise UnsupportedCompressionError(
                    f"compression {data.compression} is not one of none, gzip, lz4, zstd"
                ) from None
            producer_id, producer_epoch, base_sequence = _idempotence_of(data)
            try:
                return bytes(
                    build_batch(
                        records,
                        compression=codec,
                        producer_id=producer_id,
                        producer_epoch=producer_epoch,
                        base_sequence=base_sequence,
                        transactional=data.transactional,
                    )
                )
            except ValueError as e:
                raise InvalidRecordError(f"the records cannot be encoded as a batch: {e}") from None
        if not data.batches:
            raise InvalidRecordError("no records: batches and records are both empty")
        return data.batches

    # ---- fetch ----

    @rpc_errors
    async def Fetch(self, request: pb.FetchRequest, context: Context) -> pb.FetchResponse:
        wanted = [(t.topic, p) for t in request.topics for p in t.partitions]
        require_items(len(wanted), "topics[].partitions", empty_means_all=True)
        _require_distinct(((t, p.partition) for t, p in wanted), "the Fetch request")
        require_isolation_level(request.isolation_level)
        replica = request.replica_id if request.HasField("replica_id") else -1
        max_bytes = fetch_response_budget(request.max_bytes)
        if replica >= 0:
            self._guard.require_cluster_action()  # a follower: only nodes replicate
            # Followers are never held back by client quotas.
            if not await FAULTS.admit(FaultPath.REPLICATION, replica, Direction.INBOUND):
                raise NetworkError(f"fetch from replica {replica} dropped by fault injection")
            self._replicas.follower_fetched(replica)
            response, _, _ = await self._fetch(request, wanted, max_bytes, NOTHING_REFUSED)
            if FAULTS.drops(FaultPath.REPLICATION, replica, Direction.INBOUND):
                raise NetworkError(f"answer to replica {replica} dropped by fault injection")
            return response
        client = self._clients.saw(context, "Fetch")
        refused = self._refusals(OP_READ, (t for t, _ in wanted))
        sensors = self._quota_sensors(client)
        if sensors is NO_SENSORS:
            response, _, _ = await self._fetch(request, wanted, max_bytes, refused)
            return response
        await wait_unmuted(sensors.fetch, sensors.request)
        if sensors.fetch is not None:
            # At most one window's worth per answer (Kafka caps fetch.max.bytes so).
            max_bytes = min(max_bytes, self._quotas.max_bytes_in_window(sensors.fetch))
        started = time.monotonic()
        response, nbytes, waited_s = await self._fetch(request, wanted, max_bytes, refused)
        handler_ms = (time.monotonic() - started - waited_s) * 1000
        throttle = throttle_ms(self._quotas, sensors, sensors.fetch, nbytes, handler_ms)
        if throttle > 0:
            # The answer keeps its records and is held back (Kafka's delayed response, as for
            # fetch versions before KIP-219); the consumer needs to do nothing.
            await asyncio.sleep(throttle / 1000)
            response.throttle_time_ms = throttle
        return response

    async def _fetch(
        self,
        request: pb.FetchRequest,
        wanted: list[tuple[str, pb.FetchPartition]],
        max_bytes: int,
        refused: Mapping[str, RaftkaError],
    ) -> tuple[pb.FetchResponse, int, float]:
        """Read (long-polling up to max_wait_ms); return the answer, its batch bytes and the
        seconds spent waiting for data. Topics in ``refused`` answer their error."""
        deadline_ms = monotonic_ms() + max(0, request.max_wait_ms)
        waited_s = 0.0
        while True:
            # Results are filled in place: a batch payload is copied into the response once.
            response = pb.FetchResponse()
            waits: list[asyncio.Event] = []
            total = 0
            for topic, p in wanted:
                result = response.results.add()
                if topic in refused:
                    _set_error(result, refused[topic])
                    result.topic, result.partition = topic, p.partition
                    result.high_watermark = result.last_stable_offset = -1
                    result.log_start_offset = -1
                    continue
                nbytes, wake = await self._fetch_one(
                    result, topic, p, max(0, max_bytes - total), total == 0, request
                )
                total += nbytes
                if wake is not None:
                    waits.append(wake)
            remaining_ms = deadline_ms - monotonic_ms()
            # An error or a divergence is answered at once: waiting would not change it.
            errors = any(
                r.error_code != ErrorCode.NONE or r.HasField("diverging_epoch")
                for r in response.results
            )
            if total >= max(1, request.min_bytes) or errors or remaining_ms <= 0 or not waits:
                break
            wait_started = time.monotonic()
            await _wait_any(waits, remaining_ms / 1000)
            waited_s += time.monotonic() - wait_started
        if request.decode_records:
            for r in response.results:
                _decode_result(r, request.isolation_level)
        return response, total, waited_s

    async def _fetch_one(
        self,
        result: pb.FetchPartitionResult,
        topic: str,
        p: pb.FetchPartition,
        budget: int,
        first: bool,
        request: pb.FetchRequest,
    ) -> tuple[int, asyncio.Event | None]:
        """Read one partition into ``result``; return the bytes read and the event that fires
        on its next append (taken before the read, so an append racing with the read still
        wakes the long poll)."""
        result.topic, result.partition = topic, p.partition
        result.high_watermark = result.last_stable_offset = result.log_start_offset = -1
        partition: Partition | None = None
        current_leader_epoch = _epoch(p, "current_leader_epoch")
        last_fetched_epoch = _epoch(p, "last_fetched_epoch")
        try:
            partition = self._leader_partition(topic, p.partition, current_leader_epoch)
            wait_on = partition.data_arrived  # taken before reading, so no append is missed
            limit = (
                p.partition_max_bytes if p.partition_max_bytes > 0 else DEFAULT_PARTITION_MAX_BYTES
            )
            # Only the first partition with data may exceed the budget (by one whole batch).
            max_bytes = min(limit, budget)
            if request.HasField("replica_id") and request.replica_id >= 0:
                outcome = await partition.read_for_follower(
                    request.replica_id,
                    request.replica_epoch,
                    current_leader_epoch,
                    p.fetch_offset,
                    last_fetched_epoch,
                    max_bytes,
                    min_one_batch=first,
                )
            else:
                outcome = await partition.read_for_consumer(
                    p.fetch_offset,
                    max_bytes,
                    current_leader_epoch=current_leader_epoch,
                    last_fetched_epoch=last_fetched_epoch,
                    min_one_batch=first,
                    isolation_level=request.isolation_level,
                )
            if isinstance(outcome, EpochEndOffset):
                result.diverging_epoch.epoch = outcome.epoch
                result.diverging_epoch.end_offset = outcome.end_offset
                result.high_watermark = partition.high_watermark
                result.log_start_offset = partition.log.log_start_offset
                return 0, None
            data = outcome
            if not request.HasField("replica_id") or request.replica_id < 0:
                self._traffic.bytes_out(topic, len(data.records))
            result.batches = data.records
            result.high_watermark = data.high_watermark
            result.last_stable_offset = data.last_stable_offset
            _add_aborted(result, data.aborted)
            result.log_start_offset = data.log_start_offset
            return len(data.records), wait_on
        except LogOffsetOutOfRangeError as e:
            result.error_code = e.code
            result.error_message = (
                f"{e.message}: seek to an offset in [log start, high watermark] and fetch again"
            )
            result.log_start_offset = e.log_start_offset
            if partition is not None:
                result.high_watermark = partition.high_watermark
            return 0, None
        except RaftkaError as e:
            _set_error(result, e)
            return 0, None

    # ---- list offsets ----

    @rpc_errors
    async def ListOffsets(
        self, request: pb.ListOffsetsRequest, context: Context
    ) -> pb.ListOffsetsResponse:
        named = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
        require_items(len(named), "topics[].partitions", empty_means_all=True)
        _require_distinct(named, "the ListOffsets request")
        require_isolation_level(request.isolation_level)
        response = pb.ListOffsetsResponse()
        refused = self._refusals(OP_DESCRIBE, (t.topic for t in request.topics))
        for t in request.topics:
            for p in t.partitions:
                result = pb.ListOffsetsResult(
                    topic=t.topic, partition=p.partition, timestamp=-1, offset=-1, leader_epoch=-1
                )
                epoch = _epoch(p, "current_leader_epoch")
                try:
                    if t.topic in refused:
                        raise refused[t.topic]
                    partition = self._leader_partition(t.topic, p.partition, epoch)
                    found = await partition.list_offset(
                        p.timestamp,
                        current_leader_epoch=epoch,
                        isolation_level=request.isolation_level,
                    )
                    result.leader_epoch = partition.leader_epoch
                    if found is not None:
                        result.offset, result.timestamp = found
                except RaftkaError as e:
                    _set_error(result, e)
                response.results.append(result)
        return response

    def _refusals(self, operation: int, topics: Iterable[str]) -> dict[str, RaftkaError]:
        """The topics among ``topics`` the caller may not ``operation``, with their errors."""
        if not self._guard.enabled:
            return {}
        refused = {t: self._guard.denial(operation, RESOURCE_TOPIC, t) for t in set(topics)}
        return {t: e for t, e in refused.items() if e is not None}

    # ---- producer ids ----

    @rpc_errors
    async def InitProducerId(
        self, request: pb.InitProducerIdRequest, context: Context
    ) -> pb.InitProducerIdResponse:
        guard = self._guard
        if request.transactional_id:
            guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, request.transactional_id)
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
        # KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
        if not (
            guard.allowed_quietly(OP_IDEMPOTENT_WRITE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
            or guard.allowed_any(OP_WRITE, RESOURCE_TOPIC)
        ):
            guard.require_cluster(OP_IDEMPOTENT_WRITE)
        producer_id = await self._producer_ids.next_id()
        if self._owners is not None:
            self._owners.issued(producer_id, current_caller().principal)
        return pb.InitProducerIdResponse(producer_id=producer_id, producer_epoch=0)


def _add_aborted(result: pb.FetchPartitionResult, aborted: Iterable[AbortedTxn]) -> None:
    """The aborted transactions of a read, in first-offset order (the transaction index holds
    them in the order of their markers, which is not always the order they began in)."""
    for txn in sorted(aborted, key=lambda t: (t.first_offset, t.producer_id)):
        result.aborted_transactions.add(producer_id=txn.producer_id, first_offset=txn.first_offset)


def _decode_result(result: pb.FetchPartitionResult, isolation_level: int) -> None:
    """The decoded-records form of a fetched partition: its batches become plain records,
    without control records and, for read_committed, without the records of the aborted
    transactions the result names (which are then dropped from it: the caller has nothing left
    to filter)."""
    aborted = (
        [(a.producer_id, a.first_offset) for a in result.aborted_transactions]
        if isolation_level == READ_COMMITTED
        else []
    )
    for rec in visible_records(result.batches, aborted):
        result.records.append(
            pb.Record(
                key=rec.key,
                value=rec.value,
                offset=rec.offset,
                timestamp_ms=rec.timestamp,
                headers=[pb.RecordHeader(key=k, value=v) for k, v in rec.headers],
            )
        )
    result.batches = b""
    del result.aborted_transactions[:]


async def _wait_any(events: list[asyncio.Event], seconds: float) -> None:
    """Return when any event fires or ``seconds`` pass."""
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _idempotence_of(data: pb.PartitionProduceData) -> tuple[int, int, int]:
    """The producer id, epoch and first sequence a plain-records produce asks the broker to
    stamp into the batch it builds (unset: -1 for each, a batch without a producer id)."""
    if not data.HasField("producer_id"):
        return NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE
    if data.producer_id < 0:
        raise InvalidRequestError(
            f"producer_id {data.producer_id} is negative: use the id InitProducerId returned, "
            "or leave it unset"
        )
    if not 0 <= data.producer_epoch <= INT16_MAX:
        raise InvalidRequestError(f"producer_epoch {data.producer_epoch} is not in 0..{INT16_MAX}")
    if data.base_sequence < 0:
        raise InvalidRequestError(
            f"base_sequence {data.base_sequence} is negative: sequences run 0..2147483647"
        )
    return data.producer_id, data.producer_epoch, data.base_sequence
