"""The Kafka Fetch and ListOffsets handlers over a real partition log: on a zero-copy
connection the records come as file regions framed byte for byte as the buffered answer; a
damaged batch is answered CORRUPT_MESSAGE and recorded for repair on either path, never
served; and the caller needs Read (Fetch) or Describe (ListOffsets) on the topic, as over
gRPC."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from kio.schema.errors import ErrorCode
from prometheus_client import CollectorRegistry

from raftka.broker.kafka import fetch as kafka_fetch
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.fetch import FetchHandler, ListOffsetsHandler
from raftka.broker.kafka.framing import encode_response
from raftka.broker.kafka.regions import WithRegions, encode_with_regions
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import FetchData
from raftka.broker.metrics import TopicTraffic
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard
from raftka.common.security.model import OP_READ, RESOURCE_TOPIC
from raftka.common.storage.region import FileRegion
from tests.conditions import until
from tests.unit.broker.log.test_partition_log_damage import SEGMENT_BYTES, damaged, write
from tests.unit.broker.support import open_partition
from tests.unit.common.security.fakes import FakeAuthorizer, caller

TOPIC = "events"


class LogPartition:
    """The parts of a Partition the handlers use, over a real partition log (all of it
    below the high watermark)."""

    def __init__(self, plog: PartitionLog) -> None:
        self.log = plog
        self.data_arrived = asyncio.Event()
        self.leader_epoch = 0

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    async def read_for_consumer(self, fetch_offset: int, max_bytes: int, **kw: Any) -> FetchData:
        return self.log.read(
            fetch_offset,
            max_bytes,
            max_offset=self.log.log_end_offset,
            min_one_batch=kw["min_one_batch"],
            zero_copy=kw["zero_copy"],
        )


class Replicas:
    def __init__(self, partition: LogPartition | None) -> None:
        self.partition = partition

    def leader_partition(self, topic: str, partition: int) -> LogPartition:
        assert self.partition is not None, "not read: the topic was refused first"
        return self.partition


def backend(partition: LogPartition | None, guard: AccessGuard = OPEN_GUARD) -> KafkaBackend:
    return KafkaBackend(
        broker_id=1,
        cluster_id="c",
        replicas=cast(Any, Replicas(partition)),
        image=cast(Any, None),
        producer_ids=cast(Any, None),
        controller=cast(Any, None),
        traffic=TopicTraffic(CollectorRegistry()),
        guard=guard,
    )


def fetch_request(offset: int, *, max_wait_ms: int = 0) -> Any:
    partition = SimpleNamespace(
        partition=0,
        fetch_offset=offset,
        partition_max_bytes=1 << 20,
        current_leader_epoch=-1,
        last_fetched_epoch=-1,
    )
    return SimpleNamespace(
        replica_id=-1,
        max_bytes=50 << 20,
        min_bytes=1,
        max_wait=datetime.timedelta(milliseconds=max_wait_ms),
        isolation_level=0,
        topics=[SimpleNamespace(topic=TOPIC, partitions=[partition])],
    )


def context(key: int, version: int, *, zero_copy: bool) -> RequestContext:
    return RequestContext(key, version, 9, "c", "peer", zero_copy=zero_copy)


def serve(handler: Any, request: Any, ctx: RequestContext, principal: str | None = None) -> Any:
    async def body() -> Any:
        token = bind_caller(caller(principal)) if principal else None
        try:
            return await handler(request, ctx)
        finally:
            if token is not None:
                reset_caller(token)

    return asyncio.run(asyncio.wait_for(body(), 10))


def partition_answer(response: Any) -> Any:
    (topic,) = response.responses
    (answer,) = topic.partitions
    return answer


@pytest.mark.parametrize("version", [4, 11, 12])
def test_a_zero_copy_answer_frames_as_the_buffered_one(tmp_path: Path, version: int) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    handler = FetchHandler(backend(LogPartition(plog)))
    buffered = serve(handler, fetch_request(3), context(1, version, zero_copy=False))
    zero_copy = serve(handler, fetch_request(3), context(1, version, zero_copy=True))
    assert not isinstance(buffered, WithRegions) and isinstance(zero_copy, WithRegions)
    assert partition_answer(buffered).records, "records were read"
    parts = encode_with_regions(9, zero_copy)
    framed = b"".join(p if isinstance(p, bytes) else p.read() for p in parts)
    assert framed == encode_response(9, buffered)
    zero_copy.close()
    plog.close()


@pytest.mark.parametrize("zero_copy", [False, True])
def test_a_damaged_batch_is_answered_corrupt_message_never_served(
    tmp_path: Path, zero_copy: bool
) -> None:
    plog, _ = damaged(tmp_path)
    handler = FetchHandler(backend(LogPartition(plog)))
    response = serve(handler, fetch_request(14), context(1, 12, zero_copy=zero_copy))
    assert not isinstance(response, WithRegions)
    answer = partition_answer(response)
    assert answer.error_code == ErrorCode.corrupt_message and answer.records is None
    damage = plog.damage
    assert damage is not None and damage.offset == 14, "recorded for repair"
    plog.close()


def test_fetch_and_list_offsets_need_read_and_describe_on_the_topic() -> None:
    grants = {("User:alice", OP_READ, RESOURCE_TOPIC, "other")}
    refused = backend(None, AccessGuard(FakeAuthorizer(grants)))
    response = serve(
        FetchHandler(refused), fetch_request(0), context(1, 12, zero_copy=True), "User:alice"
    )
    answer = partition_answer(response)
    assert answer.error_code == ErrorCode.topic_authorization_failed
    request = SimpleNamespace(
        isolation_level=0,
        topics=[
            SimpleNamespace(
                name=TOPIC,
                partitions=[
                    SimpleNamespace(partition_index=0, timestamp=-1, current_leader_epoch=-1)
                ],
            )
        ],
    )
    listed = serve(
        ListOffsetsHandler(refused), request, context(2, 6, zero_copy=True), "User:alice"
    )
    assert listed.topics[0].partitions[0].error_code == ErrorCode.topic_authorization_failed


def test_unused_regions_of_a_long_poll_round_are_closed(tmp_path: Path) -> None:
    opened: list[FileRegion] = []
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog, 3)
    partition = LogPartition(plog)
    read = partition.read_for_consumer

    async def recording(fetch_offset: int, max_bytes: int, **kw: Any) -> FetchData:
        data = await read(fetch_offset, max_bytes, **kw)
        if data.region is not None:
            opened.append(data.region)
        return data

    partition.read_for_consumer = recording  # type: ignore[method-assign]
    request = fetch_request(0, max_wait_ms=5_000)
    request.min_bytes = 400  # more than the 3 batches: the poll waits for an append

    async def body() -> Any:
        task = asyncio.create_task(
            FetchHandler(backend(partition))(request, context(1, 12, zero_copy=True))
        )
        await until(lambda: bool(opened), what="the first round read")
        write(plog, 3)
        partition.data_arrived.set()  # wakes the poll: a second round is read
        return await task

    answer = asyncio.run(asyncio.wait_for(body(), 10))
    assert isinstance(answer, WithRegions)
    assert len(opened) == 2 and opened[0].closed
    assert answer.regions == [opened[-1]] and not opened[-1].closed
    answer.close()
    plog.close()


@pytest.mark.parametrize("limit", ["MAX_REGIONS_PER_ANSWER", "MAX_OPEN_REGIONS"])
def test_past_the_region_limits_records_are_read_into_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    handler = FetchHandler(backend(LogPartition(plog)))
    monkeypatch.setattr(kafka_fetch, limit, 0)
    response = serve(handler, fetch_request(3), context(1, 12, zero_copy=True))
    assert not isinstance(response, WithRegions)
    assert partition_answer(response).records, "the records are in the answer itself"
    plog.close()
