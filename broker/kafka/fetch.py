"""Fetch (v4-v12) and ListOffsets (v1-v6) for consumers.

Fetch reads through the leader's ``Partition.read_for_consumer`` (leader epoch and divergence
checks, whole stored batches up to the high watermark or, read_committed, the last stable
offset, each batch verified as it is read) and long-polls (broker/fetch_poll.py, shared with
the gRPC Fetch) on the partitions' append events up to max_wait for min_bytes. The stored
bytes are answered as they are: on a connection that can (plaintext), as regions of the
segment files that the connection sends with ``sendfile`` (broker/kafka/regions.py), else
read into memory. The caller needs Read on a topic (Describe for ListOffsets), as over gRPC,
and client quotas hold the answer as they hold the gRPC Fetch's. Fetch sessions (KIP-227)
are not kept: every answer is a full one with session id 0, which tells the client so.
Followers do not fetch here (replica_id >= 0 is refused): replication stays on gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.fetch_poll import PollRound, long_poll
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.regions import WithRegions
from raftka.broker.kafka.schema import NO_THROTTLE, build, error_of, millis, nested, response_type
from raftka.broker.log.leader_epoch_cache import EpochEndOffset
from raftka.broker.partition import FencedLeaderEpochError, NotLeaderOrFollowerError
from raftka.broker.quotas.manager import NO_SENSORS
from raftka.broker.quotas.throttling import under_quota
from raftka.broker.request_checks import topic_refusals
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.security.model import OP_DESCRIBE, OP_READ
from raftka.common.storage.errors import LogOffsetOutOfRangeError
from raftka.common.storage.region import open_regions

FETCH_KEY = 1
LIST_OFFSETS_KEY = 2
MAX_FETCH_RESPONSE_BYTES = 55 * 1024 * 1024
"""The most batch bytes one answer holds whatever the request asks (as the gRPC Fetch)."""
NO_EPOCH = -1
MAX_REGIONS_PER_ANSWER = 64
"""Partitions of one Fetch answer sent from their files; the others in it are read into
memory (each region holds a file descriptor until it is sent)."""
MAX_OPEN_REGIONS = 1024
"""Regions of the whole process waiting to be sent; past it, answers are read into memory
(clients that pipeline fetches and read slowly cannot take every descriptor)."""


def _epoch(value: int) -> int | None:
    return None if value < 0 else value


class FetchHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        if request.replica_id >= 0:
            raise InvalidRequestError("replicas fetch over gRPC, not the Kafka listener")
        budget = min(max(1, request.max_bytes), MAX_FETCH_RESPONSE_BYTES)
        quotas = self._backend.quotas
        sensors = self._backend.quota_sensors(context.client_id)
        if sensors is NO_SENSORS or quotas is None:
            answer, _, _ = await self._fetch(request, context, budget)
            return answer
        if sensors.fetch is not None:
            # At most one window's worth per answer (Kafka caps fetch.max.bytes so).
            budget = min(budget, quotas.max_bytes_in_window(sensors.fetch))

        async def work() -> tuple[Any, int, float]:
            return await self._fetch(request, context, budget)

        # Held back with its records (Kafka's delayed response), as the gRPC Fetch is.
        answer, throttle = await under_quota(quotas, sensors, sensors.fetch, work)
        if throttle > 0:
            held = datetime.timedelta(milliseconds=throttle)
            if isinstance(answer, WithRegions):
                answer.response = dataclasses.replace(answer.response, throttle_time=held)
            else:
                answer = dataclasses.replace(answer, throttle_time=held)
        return answer

    async def _fetch(
        self, request: Any, context: RequestContext, budget: int
    ) -> tuple[Any, int, float]:
        """The answer, its batch bytes, and the seconds spent waiting for data."""
        answer_type = response_type(FETCH_KEY, context.api_version)
        wanted = [(t.topic, p) for t in request.topics for p in t.partitions]
        refused = topic_refusals(self._backend.guard, OP_READ, (topic for topic, _ in wanted))
        data_type = nested(answer_type, "PartitionData")

        async def read_round() -> PollRound[tuple[list[tuple[str, Any]], WithRegions | None]]:
            regions = WithRegions(None) if context.zero_copy else None
            got: PollRound[tuple[list[tuple[str, Any]], WithRegions | None]] = PollRound(
                ([], regions), release=regions.close if regions is not None else None
            )
            for topic, p in wanted:
                if topic in refused:
                    data = build(data_type, error_code=error_of(refused[topic]), **_empty(p))
                    nbytes, wake = 0, None
                else:
                    data, nbytes, wake = await self._read_one(
                        answer_type, topic, p, max(0, budget - got.nbytes), got, request
                    )
                got.answer[0].append((topic, data))
                got.nbytes += nbytes
                if wake is not None:
                    got.wakes.append(wake)
                if data.error_code != ErrorCode.none:
                    got.settled = True  # waiting would not change it (a divergence neither)
            return got

        polled = await long_poll(
            read_round, min_bytes=request.min_bytes, max_wait_ms=millis(request.max_wait)
        )
        results, regions = polled.answer
        by_topic: dict[str, list[Any]] = {}
        for topic, data in results:
            by_topic.setdefault(topic, []).append(data)
        topic_type = nested(answer_type, "FetchableTopicResponse")
        response = build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            session_id=0,
            responses=tuple(
                build(topic_type, topic=name, partitions=tuple(parts))
                for name, parts in by_topic.items()
            ),
        )
        if regions is None or not regions.regions:
            return response, polled.nbytes, polled.waited_s
        regions.response = response
        return regions, polled.nbytes, polled.waited_s

    async def _read_one(
        self,
        answer_type: type[Any],
        topic: str,
        p: Any,
        budget: int,
        got: PollRound[tuple[list[tuple[str, Any]], WithRegions | None]],
        request: Any,
    ) -> tuple[Any, int, asyncio.Event | None]:
        """The partition's answer, its batch bytes, and the event its next append sets. On
        a zero-copy round the records are a marker for a file region of ``got``'s answer."""
        data_type = nested(answer_type, "PartitionData")
        fields = _empty(p)
        epoch = _epoch(p.current_leader_epoch)
        regions = got.answer[1]
        partition = None
        try:
            partition = self._backend.leader_partition(topic, p.partition, epoch)
            wake = partition.data_arrived  # taken before the read: no append is missed
            outcome = await partition.read_for_consumer(
                p.fetch_offset,
                min(max(0, p.partition_max_bytes), budget),
                current_leader_epoch=epoch,
                last_fetched_epoch=_epoch(getattr(p, "last_fetched_epoch", NO_EPOCH)),
                min_one_batch=got.nbytes == 0,
                isolation_level=request.isolation_level,
                zero_copy=regions is not None
                and len(regions.regions) < MAX_REGIONS_PER_ANSWER
                and open_regions() < MAX_OPEN_REGIONS,
            )
            if isinstance(outcome, EpochEndOffset):
                fields["diverging_epoch"] = nested(answer_type, "EpochEndOffset")(
                    epoch=outcome.epoch, end_offset=outcome.end_offset
                )
                fields["high_watermark"] = partition.high_watermark
                fields["log_start_offset"] = partition.log.log_start_offset
                got.settled = True
                return build(data_type, error_code=ErrorCode.none, **fields), 0, None
            self._backend.traffic.bytes_out(topic, outcome.size)
            if outcome.region is not None:
                self._backend.traffic.zero_copy_out(outcome.size)
            aborted_type = nested(answer_type, "AbortedTransaction")
            fields.update(
                high_watermark=outcome.high_watermark,
                last_stable_offset=outcome.last_stable_offset,
                log_start_offset=outcome.log_start_offset,
                records=outcome.records
                if outcome.region is None or regions is None
                else regions.add(outcome.region),
                aborted_transactions=tuple(
                    aborted_type(producer_id=a.producer_id, first_offset=a.first_offset)
                    for a in sorted(outcome.aborted, key=lambda a: (a.first_offset, a.producer_id))
                )
                if request.isolation_level
                else None,
            )
            return build(data_type, error_code=ErrorCode.none, **fields), outcome.size, wake
        except LogOffsetOutOfRangeError as e:
            fields["log_start_offset"] = e.log_start_offset
            if partition is not None:
                fields["high_watermark"] = partition.high_watermark
            return build(data_type, error_code=error_of(e), **fields), 0, None
        except RaftkaError as e:
            if isinstance(e, NotLeaderOrFollowerError | FencedLeaderEpochError):
                fields["current_leader"] = nested(answer_type, "LeaderIdAndEpoch")(
                    leader_id=e.leader_id, leader_epoch=e.leader_epoch
                )
            return build(data_type, error_code=error_of(e), **fields), 0, None


def _empty(p: Any) -> dict[str, Any]:
    """A partition answer's fields when nothing is read."""
    return {
        "partition_index": p.partition,
        "high_watermark": -1,
        "last_stable_offset": -1,
        "log_start_offset": -1,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": None,
    }


class ListOffsetsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LIST_OFFSETS_KEY, context.api_version)
        partition_type = nested(answer_type, "ListOffsetsPartitionResponse")
        topic_type = nested(answer_type, "ListOffsetsTopicResponse")
        isolation = getattr(request, "isolation_level", 0)
        refused = topic_refusals(self._backend.guard, OP_DESCRIBE, (t.name for t in request.topics))
        topics = []
        for t in request.topics:
            answers = []
            for p in t.partitions:
                epoch = _epoch(getattr(p, "current_leader_epoch", NO_EPOCH))
                try:
                    if t.name in refused:
                        raise refused[t.name]
                    partition = self._backend.leader_partition(t.name, p.partition_index, epoch)
                    found = await partition.list_offset(
                        p.timestamp, current_leader_epoch=epoch, isolation_level=isolation
                    )
                    offset, timestamp = found if found is not None else (-1, -1)
                    answers.append(
                        build(
                            partition_type,
                            partition_index=p.partition_index,
                            error_code=ErrorCode.none,
                            timestamp=timestamp,
                            offset=offset,
                            leader_epoch=partition.leader_epoch,
                        )
                    )
                except RaftkaError as e:
                    answers.append(
                        build(
                            partition_type,
                            partition_index=p.partition_index,
                            error_code=error_of(e),
                        )
                    )
            topics.append(build(topic_type, name=t.name, partitions=tuple(answers)))
        return build(answer_type, throttle_time=NO_THROTTLE, topics=tuple(topics))
