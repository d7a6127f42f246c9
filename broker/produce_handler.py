"""The BrokerService's Produce: checks a request, appends each partition's batches on the
partition leader (every record validated there: broker/log/validator.py) and answers per
partition. Per-partition problems go into that partition's result (error code + message);
the others in the request still proceed. The bytes of produced batches are stored as they are;
the plain-records convenience form is encoded into one batch here.

Before a producer's first transactional write to a partition in a transaction, the leader
verifies with the coordinator that the partition is in it (transactions/verification.py,
KIP-890 part 1). With authorization on, producer ids are bound to the principal that got or
first used them (producers/owners.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from raftka.broker.log.types import AppendResult
from raftka.broker.log.validator import NO_TIMESTAMP
from raftka.broker.metrics import TopicTraffic
from raftka.broker.partition import Partition
from raftka.broker.producers.owners import ProducerOwners
from raftka.broker.quotas.manager import NO_SENSORS, CallerSensors, QuotaManager
from raftka.broker.quotas.throttling import under_quota
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.request_checks import NOTHING_REFUSED, require_distinct, set_error
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import InvalidRequestError, InvalidTopicError, RaftkaError
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
from raftka.common.rpc.produce_wire import PartitionData, ProduceCall
from raftka.common.security.caller import current_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import OP_WRITE, RESOURCE_TOPIC, RESOURCE_TRANSACTIONAL_ID
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

INT16_MAX = 32767
VALID_ACKS = (0, 1, -1)
DEFAULT_PRODUCE_TIMEOUT_MS = 30_000


class ProduceHandler:
    def __init__(
        self,
        *,
        replicas: ReplicaManager,
        guard: AccessGuard,
        owners: ProducerOwners | None,
        txn_writes: TxnWriteVerifier | None,
        quotas: QuotaManager,
        traffic: TopicTraffic,
    ) -> None:
        """``owners``: the producer id owners (with authorization on); ``txn_writes``: the
        check of transactional writes with their coordinator (None: taken unchecked)."""
        self._replicas = replicas
        self._guard = guard
        self._owners = owners
        self._txn_writes = txn_writes
        self._quotas = quotas
        self._traffic = traffic

    async def handle(self, request: ProduceCall, sensors: CallerSensors) -> pb.ProduceResponse:
        """Answer ``request``, throttled by the caller's quota ``sensors``."""
        if sensors is NO_SENSORS:
            return await self._produce(request)

        async def work() -> tuple[pb.ProduceResponse, int, float]:
            return await self._produce(request), request.size, 0.0

        # Kafka's delayed response: the records are written; the answer waits.
        response, throttle = await under_quota(self._quotas, sensors, sensors.produce, work)
        if throttle > 0:
            response.throttle_time_ms = throttle
        return response

    async def _produce(self, request: ProduceCall) -> pb.ProduceResponse:
        named = [(t.topic, p.partition) for t in request.topics for p in t.partitions]
        require_items(len(named), "topics[].partitions", empty_means_all=True)
        require_distinct(named, "the Produce request")
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
        data: PartitionData,
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
            appended = await append_checked(
                partition,
                topic,
                data.partition,
                self._batches_of(data),
                acks=acks,
                timeout_s=timeout_s,
                transactional_id=transactional_id,
                owners=self._owners,
                txn_writes=self._txn_writes,
                traffic=self._traffic,
            )
            result.base_offset = appended.base_offset
            result.log_append_time_ms = appended.log_append_time_ms
            result.log_start_offset = appended.log_start_offset
        except RaftkaError as e:
            set_error(result, e)
        return result

    def _produce_refusals(self, request: ProduceCall) -> dict[str, RaftkaError]:
        return produce_refusals(
            self._guard, (t.topic for t in request.topics), request.transactional_id
        )

    @staticmethod
    def _batches_of(data: PartitionData) -> bytes | memoryview:
        """The batches to append: as sent, or built from the plain-records form."""
        if data.plain is not None:
            return ProduceHandler._plain_batches(data.plain)
        if not data.batches:
            raise InvalidRecordError("no records: batches and records are both empty")
        return data.batches

    @staticmethod
    def _plain_batches(data: pb.PartitionProduceData) -> bytes:
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


def produce_refusals(
    guard: AccessGuard, topics: Iterable[str], transactional_id: str | None
) -> dict[str, RaftkaError]:
    """The topics the caller may not write, with the error each partition reports: for a
    transactional produce, first WRITE on the transactional id (every topic), then WRITE on
    each topic (Kafka's order). Every produce path (gRPC, Kafka listener) asks this."""
    if not guard.enabled:
        return {}
    named = dict.fromkeys(topics)
    if transactional_id:
        error = guard.denial(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
        if error is not None:
            return dict.fromkeys(named, error)
    refused = {t: guard.denial(OP_WRITE, RESOURCE_TOPIC, t) for t in named}
    return {t: e for t, e in refused.items() if e is not None}


async def append_checked(
    partition: Partition,
    topic: str,
    index: int,
    payload: bytes | memoryview,
    *,
    acks: int,
    timeout_s: float,
    transactional_id: str,
    owners: ProducerOwners | None,
    txn_writes: TxnWriteVerifier | None,
    traffic: TopicTraffic,
) -> AppendResult:
    """Append produced batches on the leader with the checks every produce path makes: the
    producer ids' owners (with authorization on), the transactional write's verification
    with its coordinator (KIP-890), then the bytes-in count. Raises the RaftkaError that
    refused the write."""
    if owners is not None:
        table = partition.log.producer_state
        owners.check_write(
            partition.log,
            payload,
            current_caller().principal,
            lambda pid: table.entry(pid) is not None,
            name=f"{topic}-{index}",
        )
    if txn_writes is not None:
        await txn_writes.check(
            topic, index, transactional_id, payload, partition.log.producer_state
        )
    appended = await partition.append(payload, acks=acks, timeout_s=timeout_s)
    if owners is not None:
        owners.written(partition.log, payload, current_caller().principal)
    traffic.bytes_in(topic, len(payload))
    return appended


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
