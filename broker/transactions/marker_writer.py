"""The partition leader's side of WriteTxnMarkers: appends a transaction coordinator's COMMIT /
ABORT markers to the partitions this broker leads and answers per partition.

Every partition of every marker is written concurrently (each waits for its own high
watermark: a coordinator counts a marker written only once it is committed). The answer per
partition is a code the coordinator acts on: NONE (done; also for a marker written before),
a retriable one (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS(_AFTER
_APPEND), REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR: retry with a fresh leader) or a final one
(INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED: the transaction was superseded).

A ``__consumer_offsets`` partition's marker also settles the transactional offset commits
pending in its group coordinator, so it is handed to that coordinator (the ``group_marker``
hook), which appends it through its own write path; without a hook it is written like any
other partition's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from raftka.broker.log.types import StaleLeaderEpochError
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    InvalidRequestError,
    RaftkaError,
    UnknownLeaderEpochError,
)
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.limits import require_items
from raftka.common.metadata.topic_names import OFFSETS_TOPIC
from raftka.common.storage.errors import StorageError
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)


class MarkerPartition(Protocol):
    """A partition a marker is written to (:class:`~raftka.broker.partition.Partition`)."""

    async def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        *,
        timeout_s: float,
    ) -> None: ...


class LeaderPartitions(Protocol):
    """Where markers go (:class:`~raftka.broker.replica_manager.ReplicaManager`)."""

    def leader_partition(self, topic: str, partition: int) -> MarkerPartition:
        """The partition if this broker leads it; raises UnknownTopicOrPartitionError or
        NotLeaderOrFollowerError otherwise."""
        ...


GroupMarkerHook = Callable[[int, int, int, bool, int], Awaitable[None]]
"""The group coordinator's marker path: ``(partition of __consumer_offsets, producer_id,
producer_epoch, committed, coordinator_epoch)``; returns once the marker is committed, raises
as :meth:`~raftka.broker.partition.Partition.write_txn_marker` does."""

DEFAULT_MARKER_TIMEOUT_S = 30.0
"""How long one marker waits for replication (Kafka: the coordinator's request timeout)."""

MAX_PRODUCER_EPOCH = 32767

_LEADER_MOVED: tuple[type[RaftkaError], ...] = (
    StaleLeaderEpochError,
    UnknownLeaderEpochError,
    NotCoordinatorError,
    CoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
)
"""Errors that mean "this broker is not (or not yet) where the marker goes": answered
NOT_LEADER_OR_FOLLOWER, so that the coordinator finds the leader again and retries."""


def marker_error_code(error: RaftkaError) -> int:
    """The code a partition's marker result carries for ``error``."""
    if isinstance(error, _LEADER_MOVED):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if isinstance(error, StorageError):  # a closed, damaged or failing log: retry elsewhere
        return ErrorCode.KAFKA_STORAGE_ERROR
    return int(error.code)


def _check_marker(marker: tpb.TxnMarker) -> None:
    if marker.producer_id < 0:
        raise InvalidRequestError(f"marker producer_id {marker.producer_id} is negative")
    if not 0 <= marker.producer_epoch <= MAX_PRODUCER_EPOCH:
        raise InvalidRequestError(
            f"marker producer_epoch {marker.producer_epoch} is not in 0..{MAX_PRODUCER_EPOCH}"
        )
    if marker.coordinator_epoch < 0:
        raise InvalidRequestError(
            f"marker coordinator_epoch {marker.coordinator_epoch} is negative"
        )
    seen: set[tuple[str, int]] = set()
    for t in marker.topics:
        for p in t.partitions:
            if (t.topic, p) in seen:
                raise InvalidRequestError(
                    f"the marker of producer {marker.producer_id} names {t.topic}-{p} more "
                    "than once: name each partition once"
                )
            seen.add((t.topic, p))


class MarkerWriter:
    """WriteTxnMarkers on this broker: needs only the hosted partitions (and, optionally, the
    group coordinator's marker path for ``__consumer_offsets``)."""

    def __init__(
        self,
        replicas: LeaderPartitions,
        *,
        group_marker: GroupMarkerHook | None = None,
        timeout_s: float = DEFAULT_MARKER_TIMEOUT_S,
    ) -> None:
        self._replicas = replicas
        self._group_marker = group_marker
        self._timeout_s = timeout_s

    async def write(
        self, request: tpb.WriteTxnMarkersRequest, *, timeout_s: float | None = None
    ) -> tpb.WriteTxnMarkersResponse:
        """Writes every marker of ``request`` on every partition it names; one result per
        marker and partition, in request order. InvalidRequestError (nothing written) for an
        empty request, more than 10,000 partitions in all, a partition named twice in one
        marker, or a malformed producer id or epoch. ``timeout_s``: how long each partition
        waits for replication (default: the writer's)."""
        require_items(
            sum(len(t.partitions) for m in request.markers for t in m.topics),
            "markers[].topics[].partitions",
        )
        for marker in request.markers:
            _check_marker(marker)
        wait_s = self._timeout_s if timeout_s is None else timeout_s
        jobs = [
            self._write_one(marker, t.topic, p, wait_s)
            for marker in request.markers
            for t in marker.topics
            for p in t.partitions
        ]
        results = iter(await asyncio.gather(*jobs))
        response = tpb.WriteTxnMarkersResponse()
        for marker in request.markers:
            answered = response.markers.add(producer_id=marker.producer_id)
            for t in marker.topics:
                for _ in t.partitions:
                    answered.partitions.append(next(results))
        return response

    async def _write_one(
        self, marker: tpb.TxnMarker, topic: str, partition: int, timeout_s: float
    ) -> tpb.TxnPartitionResult:
        result = tpb.TxnPartitionResult(topic=topic, partition=partition)
        try:
            hosted = self._replicas.leader_partition(topic, partition)
            if topic == OFFSETS_TOPIC and self._group_marker is not None:
                await self._group_marker(
                    partition,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.committed,
                    marker.coordinator_epoch,
                )
            else:
                await hosted.write_txn_marker(
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.committed,
                    marker.coordinator_epoch,
                    timeout_s=timeout_s,
                )
        except RaftkaError as e:
            result.error_code = marker_error_code(e)  # type: ignore[assignment]
            result.error_message = e.message
        except OSError as e:
            result.error_code = ErrorCode.KAFKA_STORAGE_ERROR
            result.error_message = f"{topic}-{partition}: the marker could not be written: {e}"
        if result.error_code != ErrorCode.NONE:
            log.info(
                "txn_marker_not_written",
                topic=topic,
                partition=partition,
                producer_id=marker.producer_id,
                producer_epoch=marker.producer_epoch,
                committed=marker.committed,
                error=ErrorCode.Name(result.error_code),
                message=result.error_message,
            )
        return result
