"""TxnOffsetCommit (v0-v3): a transactional producer commits a group's offsets in its
transaction, at the group's coordinator.

An adapter only: the group operations' ``txn_commit_offsets`` (the gRPC GroupService's checks
and authorization: WRITE on the transactional id, READ on the group and on each topic), with
Kafka's request and answer translated. A fenced producer is answered INVALID_PRODUCER_EPOCH
(what Kafka's group coordinator answers there, at every version), a stale member epoch
ILLEGAL_GENERATION (these versions predate KIP-848); an error of the call as a whole is put
on every partition.
"""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.group_ops import group_operations, member_error
from raftka.broker.kafka.offsets import MEMBER_EPOCH_VERSION
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    build,
    nested,
    response_type,
)
from raftka.broker.kafka.txn import by_topic
from raftka.common.errors import RaftkaError
from raftka.v1 import groups_pb2 as gpb

TXN_OFFSET_COMMIT_KEY = 28


class TxnOffsetCommitHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(TXN_OFFSET_COMMIT_KEY, context.api_version)
        requested = [(t.name, int(p.partition_index)) for t in request.topics for p in t.partitions]
        codes: dict[tuple[str, int], ErrorCode] = {}
        try:
            answer = await group_operations(self._backend).txn_commit_offsets(
                commit_request(request)
            )
            for t in answer.topics:
                for p in t.partitions:
                    codes[(t.name, p.partition)] = _kafka_code(p.error_code)
        except RaftkaError as e:
            codes = dict.fromkeys(requested, _kafka_code(e.code))
        partition_type = nested(answer_type, "TxnOffsetCommitResponsePartition")
        topic_type = nested(answer_type, "TxnOffsetCommitResponseTopic")
        missing = ErrorCode.unknown_server_error  # the coordinator answers every partition
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            topics=tuple(
                topic_type(
                    name=topic,
                    partitions=tuple(
                        partition_type(partition_index=p, error_code=codes.get((topic, p), missing))
                        for p in partitions
                    ),
                )
                for topic, partitions in by_topic(requested).items()
            ),
        )


def _kafka_code(code: int) -> ErrorCode:
    """As TxnOffsetCommit v0-v3 clients know it: a fenced producer is INVALID_PRODUCER_EPOCH,
    the KIP-848 member codes ILLEGAL_GENERATION."""
    mapped = member_error(code, 0, MEMBER_EPOCH_VERSION)
    return ErrorCode.invalid_producer_epoch if mapped is ErrorCode.producer_fenced else mapped


def commit_request(request: Any) -> gpb.TxnOffsetCommitRequest:
    """Kafka's TxnOffsetCommit as the group coordinator's request: the consumer's generation
    (v3+; -1 before, and from a consumer that assigns its partitions) is its member epoch."""
    return gpb.TxnOffsetCommitRequest(
        transactional_id=request.transactional_id,
        group_id=request.group_id,
        producer_id=int(request.producer_id),
        producer_epoch=int(request.producer_epoch),
        member_id=getattr(request, "member_id", ""),
        member_epoch=int(getattr(request, "generation_id", -1)),
        topics=[
            gpb.OffsetCommitTopic(
                name=t.name,
                partitions=[
                    gpb.OffsetCommitPartition(
                        partition=int(p.partition_index),
                        offset=int(p.committed_offset),
                        leader_epoch=int(getattr(p, "committed_leader_epoch", -1)),
                        metadata=p.committed_metadata or "",
                    )
                    for p in t.partitions
                ],
            )
            for t in request.topics
        ],
    )
