"""Poison batches sent over gRPC to a real broker, once with the C record codec and once with
its pure-Python twin (RAFTKA_NO_ACCEL=1 in the broker's environment): each is refused with
CORRUPT_MESSAGE naming the partition and the byte, the log end offset does not move, and a good
batch right after is appended and read back."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.common.records import Compression
from raftka.common.records.accel import DISABLE_ENV
from raftka.common.records.batch import write_crc
from raftka.common.records.builder import build_batch
from raftka.common.records.varint import encode_varint
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.integration.support.broker_rpc import fetch, latest_offset, produce
from tests.integration.support.brokers import (
    start_broker_cluster,
    stop_broker_cluster,
    wait_partition_leaders,
)
from tests.integration.support.quorum import client_for
from tests.unit.common.records.codecs import raw_batch, record, records

pytestmark = pytest.mark.integration

BROKER = 2
TOPIC = "poison"
MAX_MESSAGE_BYTES = 100_000


@pytest.fixture(scope="module", params=["c", "python"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    # Child processes take the environment at spawn: the broker sees the setting, we do not keep it.
    saved = os.environ.get(DISABLE_ENV)
    os.environ[DISABLE_ENV] = "1" if request.param == "python" else "0"
    try:
        started = start_broker_cluster(
            tmp_path_factory.mktemp(f"poison-{request.param}"), controllers=1, brokers=1
        )
    finally:
        if saved is None:
            del os.environ[DISABLE_ENV]
        else:
            os.environ[DISABLE_ENV] = saved
    try:
        process = started.brokers[BROKER].process
        assert process is not None
        environ = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
        assert f"{DISABLE_ENV}={'1' if request.param == 'python' else '0'}".encode() in environ

        async def topic() -> None:
            async with client_for(started) as client:
                (created,) = await client.create_topics(
                    [
                        pb.NewTopic(
                            name=TOPIC,
                            num_partitions=1,
                            replication_factor=1,
                            configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
                        )
                    ]
                )
                assert created.error_code == cpb.NONE, created.error_message
            await wait_partition_leaders(started, TOPIC, 1)

        asyncio.run(topic())
        yield started
    finally:
        stop_broker_cluster(started)


def good(value: bytes) -> bytes:
    return bytes(build_batch([(1_700_000_000_000, b"k", value, ())]))


POISON: list[tuple[str, bytes, str]] = [
    ("lying count", bytes(raw_batch(records(1), (1 << 31) - 1)), "claims 2147483647 records"),
    ("bad varint", bytes(raw_batch(b"\xff" * 6 + b"\x00" * 10, 1)), "varint at byte 61"),
    ("truncated record", bytes(raw_batch(records(2)[:-3], 2)), "at byte 70 does not fit"),
    (
        "offset deltas out of order",
        bytes(raw_batch(record(offset_delta=0) + record(offset_delta=3), 2)),
        "offset delta 3 at byte 73",
    ),
    (
        "null header key",
        bytes(raw_batch(record(headers=encode_varint(1) + b"\x01\x01"), 1)),
        "header 0 key length -1 at byte 70",
    ),
    (
        "garbage lz4",
        bytes(raw_batch(b"", 1, compression=Compression.LZ4)[:-7] + b"\x13" * 40),
        "cannot decompress lz4",
    ),
    (
        "zstd bomb",
        bytes(
            build_batch(
                [(1_700_000_000_000, None, bytes(50 * MAX_MESSAGE_BYTES), ())],
                compression=Compression.ZSTD,
            )
        ),
        f"decompress to more than {MAX_MESSAGE_BYTES} bytes",
    ),
    (
        "poison inside gzip",
        bytes(raw_batch(record(offset_delta=1), 1, compression=Compression.GZIP)),
        "gzip records, decompressed to 9 bytes",
    ),
]


def fixed_length(batch: bytes) -> bytes:
    """``batch`` with its length and CRC made to match its bytes (a well-framed garbage batch)."""
    out = bytearray(batch)
    out[8:12] = (len(out) - 12).to_bytes(4, "big")
    write_crc(out)
    return bytes(out)


@pytest.mark.parametrize(("name", "payload", "detail"), POISON, ids=[p[0] for p in POISON])
def test_poison_batches_are_refused_and_nothing_is_written(
    cluster: LocalCluster, name: str, payload: bytes, detail: str
) -> None:
    payload = fixed_length(payload)
    address = cluster.brokers[BROKER].address

    async def main() -> None:
        before = await latest_offset(cluster, BROKER, TOPIC, 0)
        # a good batch in front of the poison is not written either
        result = await produce(address, TOPIC, 0, batches=good(b"first") + payload)
        assert result.error_code == cpb.CORRUPT_MESSAGE, (
            cpb.ErrorCode.Name(result.error_code),
            result.error_message,
        )
        assert f"{TOPIC}-0, batch at byte {len(good(b'first'))}" in result.error_message
        assert detail in result.error_message
        assert result.base_offset == -1
        assert await latest_offset(cluster, BROKER, TOPIC, 0) == before
        ok = await produce(address, TOPIC, 0, batches=good(b"after"))
        assert ok.error_code == cpb.NONE, ok.error_message
        assert ok.base_offset == before
        back = await fetch(address, TOPIC, 0, before, decode_records=True)
        assert [(r.offset, r.value) for r in back.records] == [(before, b"after")]

    asyncio.run(main())
