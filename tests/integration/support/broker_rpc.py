"""Raw BrokerService calls against one broker: produce, fetch and list offsets."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import broker_pb2_grpc as bpb_grpc
from raftka.v1 import common_pb2 as cpb

EARLIEST, LATEST = -2, -1
"""ListOffsets' special timestamps."""


@contextlib.asynccontextmanager
async def broker_stub(address: str) -> AsyncIterator[bpb_grpc.BrokerServiceStub]:
    """A BrokerService stub on its own channel to one broker."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield bpb_grpc.BrokerServiceStub(channel)


def produce_request(
    topic: str,
    partition: int,
    *,
    batches: bytes = b"",
    records: Sequence[bpb.Record] = (),
    compression: int = bpb.COMPRESSION_NONE,
    acks: int = -1,
    timeout_ms: int = 5000,
    idempotence: tuple[int, int, int] | None = None,
) -> bpb.ProduceRequest:
    """``idempotence``: (producer id, epoch, base sequence) for the plain-records form."""
    data = bpb.PartitionProduceData(
        partition=partition,
        batches=batches,
        records=list(records),
        compression=compression,  # type: ignore[arg-type]
    )
    if idempotence is not None:
        data.producer_id, data.producer_epoch, data.base_sequence = idempotence
    return bpb.ProduceRequest(
        acks=acks,
        timeout_ms=timeout_ms,
        topics=[bpb.TopicProduceData(topic=topic, partitions=[data])],
    )


async def produce(
    address: str,
    topic: str,
    partition: int,
    *,
    batches: bytes = b"",
    records: Sequence[bpb.Record] = (),
    compression: int = bpb.COMPRESSION_NONE,
    acks: int = -1,
    timeout_ms: int = 5000,
    idempotence: tuple[int, int, int] | None = None,
) -> bpb.PartitionProduceResult:
    """Produce to one partition through ``address``; return its one result (whatever its
    error code: callers assert what they expect)."""
    request = produce_request(
        topic,
        partition,
        batches=batches,
        records=records,
        compression=compression,
        acks=acks,
        timeout_ms=timeout_ms,
        idempotence=idempotence,
    )
    async with broker_stub(address) as stub:
        response = await stub.Produce(request, timeout=timeout_ms / 1000 + 5)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def fetch(
    address: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 0,
    decode_records: bool = False,
    partition_max_bytes: int = 0,
    isolation_level: int = 0,
) -> bpb.FetchPartitionResult:
    request = bpb.FetchRequest(
        replica_id=-1,
        isolation_level=isolation_level,
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        decode_records=decode_records,
        topics=[
            bpb.FetchTopic(
                topic=topic,
                partitions=[
                    bpb.FetchPartition(
                        partition=partition,
                        fetch_offset=offset,
                        partition_max_bytes=partition_max_bytes,
                        current_leader_epoch=-1,
                    )
                ],
            )
        ],
    )
    async with broker_stub(address) as stub:
        response = await stub.Fetch(request, timeout=max_wait_ms / 1000 + 10)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def list_offset(
    address: str, topic: str, partition: int, timestamp: int, *, isolation_level: int = 0
) -> bpb.ListOffsetsResult:
    request = bpb.ListOffsetsRequest(
        isolation_level=isolation_level,
        topics=[
            bpb.ListOffsetsTopic(
                topic=topic,
                partitions=[bpb.ListOffsetsPartition(partition=partition, timestamp=timestamp)],
            )
        ],
    )
    async with broker_stub(address) as stub:
        response = await stub.ListOffsets(request, timeout=10)
    (result,) = response.results
    return result  # type: ignore[no-any-return]


async def latest_offset(cluster: LocalCluster, leader: int, topic: str, partition: int) -> int:
    result = await list_offset(cluster.brokers[leader].address, topic, partition, LATEST)
    assert result.error_code == cpb.NONE, cpb.ErrorCode.Name(result.error_code)
    return int(result.offset)
