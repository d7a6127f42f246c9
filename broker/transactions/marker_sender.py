"""The coordinator's side of WriteTxnMarkers: writes one transaction's COMMIT / ABORT markers
on every partition of a :class:`~raftka.broker.transactions.api.MarkerJob`.

Per round, the partitions still to do are grouped by their current leader (from the metadata
image) and each leader gets one WriteTxnMarkers request; rounds repeat, with a growing backoff,
until every partition answered NONE. A partition whose topic is gone (deleted) is dropped: its
transaction has nothing left to close there. A retriable answer (NOT_LEADER_OR_FOLLOWER,
UNKNOWN_TOPIC_OR_PARTITION, NOT_ENOUGH_REPLICAS*, REQUEST_TIMED_OUT, KAFKA_STORAGE_ERROR, a
transport error, any other unexpected code) is retried with the leader resolved again.
INVALID_PRODUCER_EPOCH or TRANSACTION_COORDINATOR_FENCED means the transaction was superseded
(a newer epoch or a newer coordinator wrote there): the job stops, reported as such.

The sender never gives up on its own: the runtime cancels its jobs when the shard that started
them is unloaded (the next coordinator resumes them from the log).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog

from raftka.broker.transactions.api import MarkerJob, TopicPartition
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

INITIAL_BACKOFF_S = 0.05
MAX_BACKOFF_S = 2.0

SUPERSEDED = frozenset({ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.TRANSACTION_COORDINATOR_FENCED})
"""Answers that end a job: the partition holds a newer epoch or a newer coordinator's marker."""

NO_LEADER = -1


class MarkerRouting(Protocol):
    """Where a partition's marker goes (the broker's metadata image)."""

    def marker_leader(self, topic: str, partition: int) -> int | None:
        """The partition's leader, -1 while it has none, None if the partition does not exist
        (its topic was deleted)."""
        ...


class MarkerTransport(Protocol):
    async def write_markers(
        self, broker_id: int, request: tpb.WriteTxnMarkersRequest
    ) -> tpb.WriteTxnMarkersResponse:
        """Sends ``request`` to broker ``broker_id``; raises on a transport failure."""
        ...


class MarkerOutcome(enum.Enum):
    WRITTEN = "written"
    """Every partition has the marker (or is gone)."""
    SUPERSEDED = "superseded"


class MarkerSender:
    def __init__(
        self,
        routing: MarkerRouting,
        transport: MarkerTransport,
        *,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._routing = routing
        self._transport = transport
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._sleep = sleep

    async def send(self, job: MarkerJob) -> MarkerOutcome:
        """Writes ``job``'s markers until every partition has one, or it is superseded."""
        remaining = set(job.partitions)
        backoff = self._initial_backoff_s
        attempt = 0
        while True:
            by_leader = self._route(job, remaining)
            if not remaining:
                return MarkerOutcome.WRITTEN
            results = await asyncio.gather(
                *(self._send_to(leader, job, tps) for leader, tps in by_leader.items())
            )
            for done, superseded in results:
                remaining -= done
                if superseded is not None:
                    log.info(
                        "txn_markers_superseded",
                        transactional_id=job.transactional_id,
                        producer_id=job.producer_id,
                        producer_epoch=job.producer_epoch,
                        topic=superseded[0][0],
                        partition=superseded[0][1],
                        error=ErrorCode.Name(superseded[1]),  # type: ignore[arg-type]
                    )
                    return MarkerOutcome.SUPERSEDED
            if not remaining:
                return MarkerOutcome.WRITTEN
            attempt += 1
            if attempt in (1, 10) or attempt % 100 == 0:
                log.info(
                    "txn_markers_retrying",
                    transactional_id=job.transactional_id,
                    producer_id=job.producer_id,
                    remaining=len(remaining),
                    attempt=attempt,
                )
            await self._sleep(backoff)
            backoff = min(self._max_backoff_s, backoff * 2)

    def _route(
        self, job: MarkerJob, remaining: set[TopicPartition]
    ) -> dict[int, list[TopicPartition]]:
        """The partitions to send now, by leader; drops those whose topic is gone (from
        ``remaining`` too) and leaves leaderless ones for the next round."""
        by_leader: dict[int, list[TopicPartition]] = {}
        for tp in sorted(remaining):
            leader = self._routing.marker_leader(*tp)
            if leader is None:
                remaining.discard(tp)
                log.info(
                    "txn_marker_dropped_for_deleted_partition",
                    transactional_id=job.transactional_id,
                    topic=tp[0],
                    partition=tp[1],
                )
            elif leader != NO_LEADER:
                by_leader.setdefault(leader, []).append(tp)
        return by_leader

    async def _send_to(
        self, leader: int, job: MarkerJob, partitions: list[TopicPartition]
    ) -> tuple[set[TopicPartition], tuple[TopicPartition, int] | None]:
        """(the partitions that have the marker, the first superseding answer or None)."""
        try:
            response = await self._transport.write_markers(leader, _request(job, partitions))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # transport: retried with the leader resolved again
            log.debug("txn_markers_send_failed", broker_id=leader, error=repr(e)[:300])
            return set(), None
        done: set[TopicPartition] = set()
        for marker in response.markers[:1]:
            for result in marker.partitions:
                tp = (result.topic, result.partition)
                if tp not in job.partitions:
                    continue
                if result.error_code == ErrorCode.NONE:
                    done.add(tp)
                elif result.error_code in SUPERSEDED:
                    return done, (tp, result.error_code)
        return done, None


def _request(job: MarkerJob, partitions: list[TopicPartition]) -> tpb.WriteTxnMarkersRequest:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return tpb.WriteTxnMarkersRequest(
        markers=[
            tpb.TxnMarker(
                producer_id=job.producer_id,
                producer_epoch=job.producer_epoch,
                committed=job.committed,
                coordinator_epoch=job.coordinator_epoch,
                topics=[
                    tpb.TxnTopicPartitions(topic=t, partitions=ps) for t, ps in by_topic.items()
                ],
            )
        ]
    )
