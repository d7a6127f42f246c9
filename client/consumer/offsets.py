"""Offset lookups through ListOffsets at each partition's leader: the earliest and latest
offsets, and the first offset at or after a timestamp."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass

import grpc

from raftka.client.connections import BrokerConnections
from raftka.client.errors import PartitionError
from raftka.client.metadata_cache import MetadataCache
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError, RequestTimedOutError, UnknownTopicOrPartitionError
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

EARLIEST, LATEST = -2, -1
"""ListOffsets' special timestamps."""


@dataclass(frozen=True, slots=True)
class OffsetAndTimestamp:
    offset: int
    timestamp: int
    """The found record's timestamp (-1 for the earliest/latest lookups)."""
    leader_epoch: int | None = None


@dataclass(frozen=True, slots=True)
class LookupAttempt:
    found: dict[TopicPartition, OffsetAndTimestamp | None]
    """None: no record at or after the timestamp."""
    retriable: dict[TopicPartition, RaftkaError]
    refresh_metadata: bool


class OffsetLookup:
    def __init__(
        self,
        metadata: MetadataCache,
        connections: BrokerConnections,
        *,
        isolation_level: int,
        request_timeout_s: float,
        retry: RetryPolicy,
    ) -> None:
        self._metadata = metadata
        self._connections = connections
        self._isolation_level = isolation_level
        self._request_timeout_s = request_timeout_s
        self._retry = retry

    async def lookup(
        self, timestamps: Mapping[TopicPartition, int], deadline: Deadline
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Look every partition up, retrying leader changes until ``deadline``."""
        for topic in sorted({tp.topic for tp in timestamps}):
            info = await self._metadata.topic(topic, deadline)
            bad = [
                tp
                for tp in timestamps
                if tp.topic == topic and tp.partition >= len(info.partitions)
            ]
            if bad:
                raise UnknownTopicOrPartitionError(
                    f"{', '.join(map(str, sorted(bad)))} does not exist: topic {topic!r} has "
                    f"{len(info.partitions)} partition{'' if len(info.partitions) == 1 else 's'}"
                )
        pending = dict(timestamps)
        results: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        attempt = 0
        while True:
            outcome = await self.attempt(pending)
            results.update(outcome.found)
            if not outcome.retriable:
                return results
            pending = {tp: pending[tp] for tp in outcome.retriable}
            if deadline.expired():
                detail = "; ".join(e.message for e in list(outcome.retriable.values())[:3])
                raise RequestTimedOutError(
                    f"could not look up the offsets of {', '.join(map(str, sorted(pending)))} "
                    f"in time: {detail}"
                )
            attempt += 1
            if outcome.refresh_metadata:
                with contextlib.suppress(RaftkaError):  # the next attempt reports it
                    await self._metadata.refresh({tp.topic for tp in pending})
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))

    async def attempt(self, timestamps: Mapping[TopicPartition, int]) -> LookupAttempt:
        """One round: a request to each leader, concurrently. Non-retriable partition errors
        raise; retriable ones are returned."""
        by_leader: dict[str, list[TopicPartition]] = {}
        retriable: dict[TopicPartition, RaftkaError] = {}
        refresh = False
        for tp in timestamps:
            address = self._metadata.leader_address(tp.topic, tp.partition)
            if address is None:
                retriable[tp] = PartitionError(
                    ErrorCode.LEADER_NOT_AVAILABLE, "no known leader", tp.topic, tp.partition
                )
                refresh = True
            else:
                by_leader.setdefault(address, []).append(tp)
        answers = await asyncio.gather(
            *(self._ask(address, tps, timestamps) for address, tps in by_leader.items())
        )
        found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        for part_found, part_retriable, part_refresh in answers:
            found.update(part_found)
            retriable.update(part_retriable)
            refresh = refresh or part_refresh
        return LookupAttempt(found, retriable, refresh)

    async def _ask(
        self, address: str, tps: list[TopicPartition], timestamps: Mapping[TopicPartition, int]
    ) -> tuple[
        dict[TopicPartition, OffsetAndTimestamp | None], dict[TopicPartition, RaftkaError], bool
    ]:
        request = pb.ListOffsetsRequest(isolation_level=self._isolation_level)
        for topic in sorted({tp.topic for tp in tps}):
            entry = request.topics.add(topic=topic)
            for tp in tps:
                if tp.topic == topic:
                    info = self._metadata.partition(tp.topic, tp.partition)
                    entry.partitions.add(
                        partition=tp.partition,
                        timestamp=timestamps[tp],
                        current_leader_epoch=info.leader_epoch if info is not None else -1,
                    )
        try:
            response = await self._connections.stub(address).ListOffsets(
                request, timeout=self._request_timeout_s
            )
        except grpc.aio.AioRpcError as e:
            error = error_from_rpc(e, address)
            return {}, dict.fromkeys(tps, error), True
        found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        retriable: dict[TopicPartition, RaftkaError] = {}
        refresh = False
        for r in response.results:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in timestamps:
                continue
            if r.error_code == ErrorCode.NONE:
                epoch = r.leader_epoch if r.leader_epoch >= 0 else None
                found[tp] = (
                    OffsetAndTimestamp(r.offset, r.timestamp, epoch) if r.offset >= 0 else None
                )
                continue
            error = PartitionError(r.error_code, r.error_message, r.topic, r.partition)
            if not error.retriable:
                raise error
            retriable[tp] = error
            refresh = refresh or error.refresh_metadata
        for tp in tps:  # a partition the broker left out of its answer: ask again
            if tp not in found and tp not in retriable:
                retriable[tp] = PartitionError(
                    ErrorCode.UNKNOWN_SERVER_ERROR,
                    "missing from the answer",
                    tp.topic,
                    tp.partition,
                )
        return found, retriable, refresh
