"""Produce (v3-v11) and InitProducerId (v0-v4).

Produced record batches (Kafka's v2 layout, which Raftka stores) go to the same append as the
gRPC Produce, with its checks (produce_handler.py's ``produce_refusals``: WRITE on the
transactional id and each topic; ``append_checked``: producer-id owners, transactional-write
verification) and its client quotas (a throttled answer is held and says so in
throttle_time_ms): the partition leader's ``Partition.append``, which validates every batch and
every record in it, assigns offsets and waits for acks (0, 1 or -1). acks=0 gets no answer.
Idempotent producers get their producer id from the same ProducerIdManager; transactional ids
go to the transaction coordinator (txn.py serves the rest of a transaction), with the producer
id and epoch the client names (KIP-360, v3+: the coordinator bumps the epoch of that very
producer, or fences a stale one); an idempotent producer naming itself gets a new producer id,
as Kafka answers. The caller's rights are the gRPC InitProducerId's (producers/rights.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    error_of,
    millis,
    nested,
    response_type,
)
from raftka.broker.partition import FencedLeaderEpochError, NotLeaderOrFollowerError
from raftka.broker.produce_handler import append_checked, produce_refusals
from raftka.broker.producers.rights import require_producer_id_rights
from raftka.broker.quotas.manager import NO_SENSORS
from raftka.broker.quotas.throttling import under_quota
from raftka.common.errors import InvalidTopicError, RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.metadata.topic_names import INTERNAL_TOPICS
from raftka.common.records.errors import InvalidRecordError
from raftka.common.security.caller import current_caller

PRODUCE_KEY = 0
INIT_PRODUCER_ID_KEY = 22
VALID_ACKS = (0, 1, -1)
DEFAULT_TIMEOUT_MS = 30_000
PRODUCER_FENCED_FROM = 4
"""InitProducerId answers PRODUCER_FENCED from this version (INVALID_PRODUCER_EPOCH before)."""


class ProduceHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any | None:
        sensors = self._backend.quota_sensors(context.client_id)
        if sensors is NO_SENSORS or self._backend.quotas is None:
            return await self._produce(request, context)
        size = sum(len(p.records or b"") for t in request.topic_data for p in t.partition_data)

        async def work() -> tuple[Any | None, int, float]:
            return await self._produce(request, context), size, 0.0

        # Kafka's delayed response: the records are written, the answer waits; the answer
        # then says how long it was held (throttle_time_ms), as the gRPC Produce does.
        answer, throttle = await under_quota(self._backend.quotas, sensors, sensors.produce, work)
        if throttle > 0 and answer is not None:
            answer = dataclasses.replace(
                answer, throttle_time=datetime.timedelta(milliseconds=throttle)
            )
        return answer

    async def _produce(self, request: Any, context: RequestContext) -> Any | None:
        answer_type = response_type(PRODUCE_KEY, context.api_version)
        acks = int(request.acks)
        timeout_ms = millis(request.timeout)
        timeout_s = (timeout_ms if timeout_ms > 0 else DEFAULT_TIMEOUT_MS) / 1000
        named = [(t.name, p) for t in request.topic_data for p in t.partition_data]
        if acks not in VALID_ACKS:
            outcomes: list[Any] = [
                (ErrorCode.invalid_required_acks, f"acks must be 0, 1 or -1, not {acks}")
            ] * len(named)
        else:
            refused = produce_refusals(
                self._backend.guard, (t for t, _ in named), request.transactional_id
            )
            jobs = [
                self._append(
                    topic, p.index, p.records, acks, timeout_s, request.transactional_id, refused
                )
                for topic, p in named
            ]
            outcomes = [await jobs[0]] if len(jobs) == 1 else list(await asyncio.gather(*jobs))
        if acks == 0:
            return None
        by_topic: dict[str, list[Any]] = {}
        partition_type = nested(answer_type, "PartitionProduceResponse")
        for (topic, p), outcome in zip(named, outcomes, strict=True):
            by_topic.setdefault(topic, []).append(
                self._result(answer_type, partition_type, p.index, outcome)
            )
        topic_type = nested(answer_type, "TopicProduceResponse")
        return build(
            answer_type,
            responses=tuple(
                build(topic_type, name=name, partition_responses=tuple(results))
                for name, results in by_topic.items()
            ),
            throttle_time=NO_THROTTLE,
        )

    async def _append(
        self,
        topic: str,
        index: int,
        records: bytes | None,
        acks: int,
        timeout_s: float,
        transactional_id: str | None,
        refused: Mapping[str, RaftkaError],
    ) -> Any:
        """The AppendResult, or the RaftkaError that refused the write."""
        backend = self._backend
        try:
            if topic in refused:
                raise refused[topic]
            if topic in INTERNAL_TOPICS:
                raise InvalidTopicError(
                    f"{topic} is an internal topic: only its coordinator writes it"
                )
            if not records:
                raise InvalidRecordError(f"no record batches for {topic}-{index}")
            partition = backend.replicas.leader_partition(topic, index)
            return await append_checked(
                partition,
                topic,
                index,
                records,
                acks=acks,
                timeout_s=timeout_s,
                transactional_id=transactional_id or "",
                owners=backend.owners,
                txn_writes=backend.txn_writes,
                traffic=backend.traffic,
            )
        except RaftkaError as e:
            return e

    @staticmethod
    def _result(answer_type: type[Any], partition_type: type[Any], index: int, outcome: Any) -> Any:
        if isinstance(outcome, tuple):
            code, message = outcome
            return build(
                partition_type,
                index=index,
                error_code=code,
                base_offset=-1,
                log_append_time=None,
                log_start_offset=-1,
                record_errors=(),
                error_message=message,
            )
        if isinstance(outcome, RaftkaError):
            extra: dict[str, Any] = {}
            if isinstance(outcome, NotLeaderOrFollowerError | FencedLeaderEpochError):
                extra["current_leader"] = nested(answer_type, "LeaderIdAndEpoch")(
                    leader_id=outcome.leader_id, leader_epoch=outcome.leader_epoch
                )
            return build(
                partition_type,
                index=index,
                error_code=error_of(outcome),
                base_offset=-1,
                log_append_time=None,
                log_start_offset=-1,
                record_errors=(),
                error_message=outcome.message,
                **extra,
            )
        append_time = (
            datetime.datetime.fromtimestamp(outcome.log_append_time_ms / 1000, datetime.UTC)
            if outcome.log_append_time_ms >= 0
            else None
        )
        return build(
            partition_type,
            index=index,
            error_code=ErrorCode.none,
            base_offset=outcome.base_offset,
            log_append_time=append_time,
            log_start_offset=outcome.log_start_offset,
            record_errors=(),
            error_message=None,
        )


class InitProducerIdHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(INIT_PRODUCER_ID_KEY, context.api_version)
        backend = self._backend
        try:
            require_producer_id_rights(backend.guard, request.transactional_id or "")
            if request.transactional_id:
                if backend.transactions is None:
                    raise CoordinatorNotAvailableError(
                        "this broker has no transaction coordinator; retry later"
                    )
                result = await backend.transactions.init_producer_id(
                    request.transactional_id,
                    millis(request.transaction_timeout),
                    expected=_named_producer(request),
                )
                producer_id, epoch = result.producer_id, result.producer_epoch
            else:
                producer_id, epoch = await backend.producer_ids.next_id(), 0
                if backend.owners is not None:
                    backend.owners.issued(producer_id, current_caller().principal)
        except RaftkaError as e:
            code = error_of(e)
            if code is ErrorCode.producer_fenced and context.api_version < PRODUCER_FENCED_FROM:
                code = ErrorCode.invalid_producer_epoch  # KIP-588: older clients know this one
            return build(
                answer_type,
                throttle_time=NO_THROTTLE,
                error_code=code,
                producer_id=-1,
                producer_epoch=-1,
            )
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            producer_id=producer_id,
            producer_epoch=epoch,
        )


def _named_producer(request: Any) -> tuple[int, int] | None:
    """The producer id and epoch an InitProducerId names (v3+, KIP-360: a producer bumping
    its own epoch to recover), or None (-1: a new producer)."""
    producer_id = int(getattr(request, "producer_id", -1))
    epoch = int(getattr(request, "producer_epoch", -1))
    return None if producer_id < 0 and epoch < 0 else (producer_id, epoch)
