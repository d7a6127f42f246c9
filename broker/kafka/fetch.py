"""Fetch (v4-v12) and ListOffsets (v1-v6) for consumers.

Fetch reads through the leader's ``Partition.read_for_consumer`` (leader epoch and divergence
checks, whole stored batches up to the high watermark or, read_committed, the last stable
offset, each batch verified as it is read) and long-polls on the partitions' append events up
to max_wait for min_bytes. The stored bytes are answered as they are. Fetch sessions (KIP-227)
are not kept: every answer is a full one with session id 0, which tells the client so.
Followers do not fetch here (replica_id >= 0 is refused): replication stays on gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import Mapping
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import NO_THROTTLE, build, error_of, millis, nested, response_type
from raftka.broker.log.leader_epoch_cache import EpochEndOffset
from raftka.broker.partition import FencedLeaderEpochError, NotLeaderOrFollowerError
from raftka.broker.quotas.manager import NO_SENSORS
from raftka.broker.quotas.throttling import under_quota
from raftka.broker.request_checks import NOTHING_REFUSED, topic_refusals
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.security.model import OP_DESCRIBE, OP_READ
from raftka.common.storage.errors import LogOffsetOutOfRangeError

FETCH_KEY = 1
LIST_OFFSETS_KEY = 2
MAX_FETCH_RESPONSE_BYTES = 55 * 1024 * 1024
"""The most batch bytes one answer holds whatever the request asks (as the gRPC Fetch)."""
NO_EPOCH = -1


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

        # Held back with its records (Kafka's delayed response), as the gRPC Fetch does.
        answer, throttle = await under_quota(quotas, sensors, sensors.fetch, work)
        if throttle > 0:
            answer = dataclasses.replace(
                answer, throttle_time=datetime.timedelta(milliseconds=throttle)
            )
        return answer

    async def _fetch(
        self, request: Any, context: RequestContext, budget: int
    ) -> tuple[Any, int, float]:
        """The answer, its batch bytes, and the seconds spent waiting for data."""
        answer_type = response_type(FETCH_KEY, context.api_version)
        wanted = [(t.topic, p) for t in request.topics for p in t.partitions]
        # READ on each topic, as the gRPC Fetch asks (a refused topic's partitions say so).
        refused = topic_refusals(self._backend.guard, OP_READ, (t for t, _ in wanted))
        waited = 0.0
        deadline = time.monotonic() + max(0, millis(request.max_wait)) / 1000
        while True:
            results: list[tuple[str, Any]] = []
            waits: list[asyncio.Event] = []
            total = 0
            errors = False
            for topic, p in wanted:
                data, nbytes, wake = await self._read_one(
                    answer_type, topic, p, max(0, budget - total), total == 0, request, refused
                )
                results.append((topic, data))
                total += nbytes
                errors = errors or data.error_code != ErrorCode.none
                if wake is not None:
                    waits.append(wake)
            remaining = deadline - time.monotonic()
            if total >= max(1, request.min_bytes) or errors or remaining <= 0 or not waits:
                break
            before = time.monotonic()
            await _wait_any(waits, remaining)
            waited += time.monotonic() - before
        by_topic: dict[str, list[Any]] = {}
        for topic, data in results:
            by_topic.setdefault(topic, []).append(data)
        topic_type = nested(answer_type, "FetchableTopicResponse")
        answer = build(
            answer_type,
            throttle_time=NO_THROTTLE,
            error_code=ErrorCode.none,
            session_id=0,
            responses=tuple(
                build(topic_type, topic=name, partitions=tuple(parts))
                for name, parts in by_topic.items()
            ),
        )
        return answer, total, waited

    async def _read_one(
        self,
        answer_type: type[Any],
        topic: str,
        p: Any,
        budget: int,
        first: bool,
        request: Any,
        refused: Mapping[str, RaftkaError] = NOTHING_REFUSED,
    ) -> tuple[Any, int, asyncio.Event | None]:
        """The partition's answer, its batch bytes, and the event its next append sets."""
        data_type = nested(answer_type, "PartitionData")
        fields: dict[str, Any] = {
            "partition_index": p.partition,
            "high_watermark": -1,
            "last_stable_offset": -1,
            "log_start_offset": -1,
            "aborted_transactions": None,
            "preferred_read_replica": -1,
            "records": None,
        }
        epoch = _epoch(p.current_leader_epoch)
        partition = None
        try:
            if topic in refused:
                raise refused[topic]
            partition = self._backend.leader_partition(topic, p.partition, epoch)
            wake = partition.data_arrived  # taken before the read: no append is missed
            outcome = await partition.read_for_consumer(
                p.fetch_offset,
                min(max(0, p.partition_max_bytes), budget),
                current_leader_epoch=epoch,
                last_fetched_epoch=_epoch(getattr(p, "last_fetched_epoch", NO_EPOCH)),
                min_one_batch=first,
                isolation_level=request.isolation_level,
            )
            if isinstance(outcome, EpochEndOffset):
                fields["diverging_epoch"] = nested(answer_type, "EpochEndOffset")(
                    epoch=outcome.epoch, end_offset=outcome.end_offset
                )
                fields["high_watermark"] = partition.high_watermark
                fields["log_start_offset"] = partition.log.log_start_offset
                return build(data_type, error_code=ErrorCode.none, **fields), 0, None
            self._backend.traffic.bytes_out(topic, len(outcome.records))
            aborted_type = nested(answer_type, "AbortedTransaction")
            fields.update(
                high_watermark=outcome.high_watermark,
                last_stable_offset=outcome.last_stable_offset,
                log_start_offset=outcome.log_start_offset,
                records=outcome.records,
                aborted_transactions=tuple(
                    aborted_type(producer_id=a.producer_id, first_offset=a.first_offset)
                    for a in sorted(outcome.aborted, key=lambda a: (a.first_offset, a.producer_id))
                )
                if request.isolation_level
                else None,
            )
            return build(data_type, error_code=ErrorCode.none, **fields), len(outcome.records), wake
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


async def _wait_any(events: list[asyncio.Event], seconds: float) -> None:
    tasks = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


class ListOffsetsHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(LIST_OFFSETS_KEY, context.api_version)
        partition_type = nested(answer_type, "ListOffsetsPartitionResponse")
        topic_type = nested(answer_type, "ListOffsetsTopicResponse")
        isolation = getattr(request, "isolation_level", 0)
        # DESCRIBE on each topic, as the gRPC ListOffsets asks.
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
