"""Produce, Fetch, ListOffsets and Metadata against real controller and broker processes.

One cluster (three controllers, brokers 4, 5, 6) serves the whole module; every test uses its
own topics and leaves every node running.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from raftka.common.records.batch import (
    Compression,
    read_base_offset,
    read_batch_size,
    set_base_offset,
    set_partition_leader_epoch,
)
from raftka.common.records.builder import build_batch
from raftka.common.records.decoder import iter_records
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import (
    EARLIEST,
    LATEST,
    broker_stub,
    fetch,
    latest_offset,
    list_offset,
    produce,
    produce_request,
)
from tests.integration.support.brokers import wait_partition_leaders
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


def code(value: int) -> str:
    return cpb.ErrorCode.Name(value)  # type: ignore[arg-type]


def as_stored(sent: bytes | bytearray, base_offset: int, leader_epoch: int) -> bytes:
    """What the leader stores for a sent batch: the same bytes with the base offset it assigns
    and its leader epoch stamped (neither field is covered by the CRC)."""
    stored = bytearray(sent)
    set_base_offset(stored, base_offset)
    set_partition_leader_epoch(stored, leader_epoch)
    return bytes(stored)


def split(buf: bytes) -> list[bytes]:
    """Concatenated batches -> one bytes object per batch."""
    out, pos = [], 0
    while pos < len(buf):
        size = read_batch_size(buf, pos)
        out.append(buf[pos : pos + size])
        pos += size
    return out


async def leader_epochs(cluster: LocalCluster, topic: str) -> dict[int, int]:
    async with broker_stub(cluster.bootstrap_servers[0]) as stub:
        meta = await stub.Metadata(bpb.MetadataRequest(topics=[topic]), timeout=5)
    return {p.partition: p.leader_epoch for p in meta.topics[0].partitions}


async def new_topic(
    cluster: LocalCluster,
    name: str,
    partitions: int = 1,
    rf: int = 3,
) -> dict[int, int]:
    async with client_for(cluster) as client:
        # exist_ok: on a loaded machine the first answer may time out and the retry find it
        await create_topic(client, name, partitions=partitions, rf=rf, exist_ok=True)
    return await wait_partition_leaders(cluster, name, partitions)


def test_produce_then_fetch_returns_byte_identical_batches(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "bytes", partitions=1, rf=3)
        address = broker_cluster.brokers[leaders[0]].address
        epoch = (await leader_epochs(broker_cluster, "bytes"))[0]
        sent = [
            build_batch([(NOW_MS, b"k0", b"v0", ())]),
            build_batch(
                [
                    (NOW_MS + i, None if i % 2 else f"k{i}".encode(), bytes([i]) * (i * 37), ())
                    for i in range(1, 40)
                ]
            ),
            build_batch(
                [(NOW_MS, b"h", None, (("trace", b"\x00\xff"), ("empty", None), ("e", b"")))]
            ),
        ]
        # sent batches carry arbitrary base offsets; the leader replaces them
        set_base_offset(sent[1], 12345)
        expected = b""
        offset = 0
        for batch in sent[:2]:
            result = await produce(address, "bytes", 0, batches=bytes(batch))
            assert result.error_code == cpb.NONE, result.error_message
            assert result.base_offset == offset
            assert result.log_append_time_ms == -1  # CreateTime topic
            expected += as_stored(batch, offset, epoch)
            offset += len(list(iter_records(batch)))
        # two batches in one request: consecutive offsets, one base offset returned
        two = bytes(sent[2]) + bytes(sent[0])
        result = await produce(address, "bytes", 0, batches=two)
        assert result.error_code == cpb.NONE, result.error_message
        assert result.base_offset == offset
        expected += as_stored(sent[2], offset, epoch) + as_stored(sent[0], offset + 1, epoch)
        offset += 2

        fetched = await fetch(address, "bytes", 0, 0)
        assert fetched.error_code == cpb.NONE, fetched.error_message
        assert fetched.batches == expected
        assert fetched.high_watermark == offset
        assert fetched.log_start_offset == 0
        assert not fetched.records
        # from the middle of the second batch: whole stored batches from the one holding it
        fetched = await fetch(address, "bytes", 0, 5)
        assert fetched.batches == expected[len(split(expected)[0]) :]
        # a tiny partition_max_bytes still returns one whole batch
        fetched = await fetch(address, "bytes", 0, 0, partition_max_bytes=1)
        assert fetched.batches == split(expected)[0]
        # at the log end: nothing, no error
        fetched = await fetch(address, "bytes", 0, offset)
        assert fetched.error_code == cpb.NONE and fetched.batches == b""
        assert fetched.high_watermark == offset
        # decoded, the offsets are the assigned ones
        decoded = await fetch(address, "bytes", 0, 0, decode_records=True)
        assert [r.offset for r in decoded.records] == list(range(offset))
        assert decoded.batches == b""
        assert decoded.records[0].key == b"k0" and decoded.records[0].value == b"v0"
        assert not decoded.records[1].HasField("key")
        header_record = decoded.records[offset - 2]
        assert not header_record.HasField("value")
        assert [(h.key, h.HasField("value"), h.value) for h in header_record.headers] == [
            ("trace", True, b"\x00\xff"),
            ("empty", False, b""),
            ("e", True, b""),
        ]

    asyncio.run(main())


@pytest.mark.parametrize(
    "codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD]
)
def test_compressed_batches_round_trip(broker_cluster: LocalCluster, codec: Compression) -> None:
    topic = f"compressed-{codec.name.lower()}"

    async def main() -> None:
        leaders = await new_topic(broker_cluster, topic, partitions=1, rf=1)
        address = broker_cluster.brokers[leaders[0]].address
        epoch = (await leader_epochs(broker_cluster, topic))[0]
        records = [(NOW_MS + i, f"key-{i}".encode(), b"abc" * i * 50, ()) for i in range(100)]
        batch = build_batch(records, compression=codec)
        assert len(batch) < sum(len(v) for _t, _k, v, _h in records)  # really compressed
        result = await produce(address, topic, 0, batches=bytes(batch))
        assert result.error_code == cpb.NONE, result.error_message
        assert result.base_offset == 0
        # the convenience form with the same codec, after it
        plain = [bpb.Record(key=b"p", value=b"xyz" * 100, timestamp_ms=NOW_MS)] * 3
        result = await produce(address, topic, 0, records=plain, compression=int(codec))
        assert result.error_code == cpb.NONE, result.error_message
        assert result.base_offset == 100

        raw = await fetch(address, topic, 0, 0)
        first, second = split(raw.batches)
        assert first == as_stored(batch, 0, epoch)  # compressed bytes stored as they came
        assert [(r.key, r.value) for r in iter_records(second)] == [(b"p", b"xyz" * 100)] * 3
        assert second[22] & 0x07 == int(codec)  # the attributes' codec bits
        decoded = await fetch(address, topic, 0, 0, decode_records=True)
        assert [(r.offset, r.timestamp_ms, r.key, r.value) for r in decoded.records] == [
            (i, ts, k, v) for i, (ts, k, v, _h) in enumerate(records)
        ] + [(100 + i, NOW_MS, b"p", b"xyz" * 100) for i in range(3)]

    asyncio.run(main())


def test_topic_compression_type_recompresses_and_a_change_applies_at_once(
    broker_cluster: LocalCluster,
) -> None:
    topic = "recompressed"

    async def main() -> None:
        async with client_for(broker_cluster) as client:
            (created,) = await client.create_topics(
                [
                    pb.NewTopic(
                        name=topic,
                        num_partitions=1,
                        replication_factor=1,
                        configs={"compression.type": "zstd"},
                    )
                ]
            )
            assert created.error_code == cpb.NONE, created.error_message
            leaders = await wait_partition_leaders(broker_cluster, topic, 1)
            address = broker_cluster.brokers[leaders[0]].address
            records = [(NOW_MS + i, f"k{i}".encode(), b"value " * 40, ()) for i in range(50)]
            sent = build_batch(records, compression=Compression.LZ4)
            result = await produce(address, topic, 0, batches=bytes(sent))
            assert result.error_code == cpb.NONE, result.error_message
            op = pb.AlterConfigOp(
                name="compression.type", op=pb.AlterConfigOp.SET, value="producer"
            )
            (altered,) = await client.alter_configs(
                [pb.AlterConfigResource(type=cpb.RESOURCE_TYPE_TOPIC, name=topic, ops=[op])]
            )
            assert altered.error_code == cpb.NONE, altered.error_message

            async def stored_codecs() -> list[int] | None:
                # Until the broker has the change, the batch is stored in zstd still.
                result = await produce(address, topic, 0, batches=bytes(sent))
                assert result.error_code == cpb.NONE, result.error_message
                codecs = [b[22] & 0x07 for b in split((await fetch(address, topic, 0, 0)).batches)]
                return codecs if codecs[-1] == int(Compression.LZ4) else None

            codecs = await eventually(stored_codecs, what="compression.type=producer applied")
            assert codecs[0] == int(Compression.ZSTD)
            raw = (await fetch(address, topic, 0, 0)).batches
            assert [(r.key, r.value) for r in iter_records(split(raw)[0])] == [
                (k, v) for _t, k, v, _h in records
            ]

    asyncio.run(main())


def test_convenience_records_round_trip(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "plain", partitions=1, rf=1)
        address = broker_cluster.brokers[leaders[0]].address
        records = [
            bpb.Record(key=b"a", value=b"1", timestamp_ms=NOW_MS - 5),
            bpb.Record(value=b"no key"),  # timestamp 0: the broker stamps "now"
            bpb.Record(key=b"tombstone"),
            bpb.Record(
                key=b"",
                value=b"",
                headers=[bpb.RecordHeader(key="h", value=b"v"), bpb.RecordHeader(key="n")],
            ),
        ]
        before = int(time.time() * 1000)
        result = await produce(address, "plain", 0, records=records)
        after = int(time.time() * 1000)
        assert result.error_code == cpb.NONE, result.error_message
        assert result.base_offset == 0
        decoded = (await fetch(address, "plain", 0, 0, decode_records=True)).records
        assert [r.offset for r in decoded] == [0, 1, 2, 3]
        assert decoded[0].key == b"a" and decoded[0].value == b"1"
        assert decoded[0].timestamp_ms == NOW_MS - 5
        assert not decoded[1].HasField("key") and decoded[1].value == b"no key"
        assert before <= decoded[1].timestamp_ms <= after
        assert decoded[2].key == b"tombstone" and not decoded[2].HasField("value")
        assert decoded[3].HasField("key") and decoded[3].key == b""
        assert decoded[3].HasField("value") and decoded[3].value == b""
        assert [(h.key, h.HasField("value")) for h in decoded[3].headers] == [
            ("h", True),
            ("n", False),
        ]
        # the stored form is one ordinary v2 batch
        (batch,) = split((await fetch(address, "plain", 0, 0)).batches)
        assert read_base_offset(batch) == 0 and batch[16] == 2

    asyncio.run(main())


def test_list_offsets_earliest_latest_and_by_timestamp(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "times", partitions=1, rf=1)
        address = broker_cluster.brokers[leaders[0]].address
        epoch = (await leader_epochs(broker_cluster, "times"))[0]
        empty_earliest = await list_offset(address, "times", 0, EARLIEST)
        empty_latest = await list_offset(address, "times", 0, LATEST)
        assert (empty_earliest.offset, empty_latest.offset) == (0, 0)
        assert (await list_offset(address, "times", 0, NOW_MS)).offset == -1
        base = NOW_MS - 600_000
        # offsets 0-2 at base+0..2 s, 3-5 at base+10..12 s, 6-8 at base+20..22 s
        for b in range(3):
            batch = build_batch(
                [(base + b * 10_000 + i * 1000, None, f"{b}-{i}".encode(), ()) for i in range(3)]
            )
            result = await produce(address, "times", 0, batches=bytes(batch))
            assert result.error_code == cpb.NONE, result.error_message

        earliest = await list_offset(address, "times", 0, EARLIEST)
        latest = await list_offset(address, "times", 0, LATEST)
        assert earliest.error_code == cpb.NONE and earliest.offset == 0
        assert latest.error_code == cpb.NONE and latest.offset == 9
        assert latest.leader_epoch == epoch
        expectations = {
            base - 1: (0, base),  # before everything: the first record
            base: (0, base),
            base + 1: (1, base + 1000),  # inside a batch: the first record at or after it
            base + 2500: (3, base + 10_000),  # between batches: the next batch's first record
            base + 12_000: (5, base + 12_000),
            base + 20_001: (7, base + 21_000),
            base + 22_000: (8, base + 22_000),
        }
        for ts, (offset, found_ts) in expectations.items():
            found = await list_offset(address, "times", 0, ts)
            assert found.error_code == cpb.NONE, found.error_message
            assert (found.offset, found.timestamp) == (offset, found_ts), ts - base
        after_all = await list_offset(address, "times", 0, base + 22_001)
        assert after_all.error_code == cpb.NONE and after_all.offset == -1
        # any other negative timestamp is a bad request for that partition
        bad = await list_offset(address, "times", 0, -3)
        assert bad.error_code == cpb.INVALID_REQUEST and "-3" in bad.error_message

    asyncio.run(main())


def test_metadata_lists_brokers_and_partition_leaders(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "meta", partitions=6, rf=2)
        await new_topic(broker_cluster, "meta-other", partitions=1, rf=1)
        async with client_for(broker_cluster) as client:
            (described,) = await client.describe_topics(["meta"])
            cluster_desc = await client.describe_cluster()
        for broker_id, node in broker_cluster.brokers.items():
            async with broker_stub(node.address) as stub:
                meta = await stub.Metadata(bpb.MetadataRequest(), timeout=5)
                named = await stub.Metadata(
                    bpb.MetadataRequest(topics=["meta", "no-such-topic"]), timeout=5
                )
            assert meta.cluster_id == broker_cluster.cluster_id, broker_id
            assert meta.metadata_index > 0
            assert {(b.broker_id, f"{b.host}:{b.port}") for b in meta.brokers} == {
                (b, n.address) for b, n in broker_cluster.brokers.items()
            }
            assert {b.broker_id: b.rack for b in meta.brokers} == {
                b.broker_id: b.rack for b in cluster_desc.brokers
            }
            assert {"meta", "meta-other"} <= {t.name for t in meta.topics}
            topic, missing = named.topics
            assert (missing.name, missing.error_code) == (
                "no-such-topic",
                cpb.UNKNOWN_TOPIC_OR_PARTITION,
            )
            assert not missing.partitions
            assert topic.name == "meta" and topic.error_code == cpb.NONE
            assert topic.topic_id == described.topic_id
            assert [p.partition for p in topic.partitions] == list(range(6))
            for p, want in zip(topic.partitions, described.partitions, strict=True):
                assert p.error_code == cpb.NONE
                assert p.leader_id == leaders[p.partition] == want.leader
                assert p.leader_epoch == want.leader_epoch
                assert list(p.replicas) == list(want.replicas) and len(p.replicas) == 2
                assert list(p.isr) == list(want.isr)
                assert p.leader_id in p.replicas and not p.offline_replicas
        # six partitions over three brokers: every broker leads some
        assert set(leaders.values()) == set(broker_cluster.brokers)

    asyncio.run(main())


def test_non_leader_answers_not_leader_with_the_leader(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "hints", partitions=3, rf=3)
        epochs = await leader_epochs(broker_cluster, "hints")
        leader = leaders[0]
        other = next(b for b in broker_cluster.brokers if b != leader)
        other_address = broker_cluster.brokers[other].address
        before = await latest_offset(broker_cluster, leader, "hints", 0)

        result = await produce(other_address, "hints", 0, records=[bpb.Record(value=b"x")])
        assert result.error_code == cpb.NOT_LEADER_OR_FOLLOWER
        assert str(leader) in result.error_message
        assert result.current_leader.leader_id == leader
        assert result.current_leader.leader_epoch == epochs[0]
        assert result.base_offset == -1
        fetched = await fetch(other_address, "hints", 0, 0)
        assert fetched.error_code == cpb.NOT_LEADER_OR_FOLLOWER
        assert fetched.current_leader.leader_id == leader
        assert fetched.current_leader.leader_epoch == epochs[0]
        listed = await list_offset(other_address, "hints", 0, LATEST)
        assert listed.error_code == cpb.NOT_LEADER_OR_FOLLOWER
        assert await latest_offset(broker_cluster, leader, "hints", 0) == before

        # one request for every partition, sent to one broker: each partition answered on
        # its own, the ones it leads written, the others pointed at their leader
        request = bpb.ProduceRequest(
            acks=1,
            topics=[
                bpb.TopicProduceData(
                    topic="hints",
                    partitions=[
                        bpb.PartitionProduceData(partition=p, records=[bpb.Record(value=b"y")])
                        for p in range(3)
                    ],
                )
            ],
        )
        async with broker_stub(other_address) as stub:
            response = await stub.Produce(request, timeout=10)
        assert sorted(r.partition for r in response.results) == [0, 1, 2]
        for r in response.results:
            if leaders[r.partition] == other:
                assert r.error_code == cpb.NONE, r.error_message
            else:
                assert r.error_code == cpb.NOT_LEADER_OR_FOLLOWER
                assert r.current_leader.leader_id == leaders[r.partition]
                assert r.current_leader.leader_epoch == epochs[r.partition]

    asyncio.run(main())


def test_unknown_topic_or_partition(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "known", partitions=2, rf=1)
        address = broker_cluster.brokers[leaders[0]].address
        for topic, partition in [("never-created", 0), ("known", 2), ("known", 99), ("known", -1)]:
            where = f"{topic}-{partition}"
            produced = await produce(address, topic, partition, records=[bpb.Record(value=b"x")])
            assert produced.error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION, where
            assert where in produced.error_message
            assert produced.topic == topic and produced.partition == partition
            fetched = await fetch(address, topic, partition, 0)
            assert fetched.error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION, where
            assert fetched.batches == b""
            listed = await list_offset(address, topic, partition, LATEST)
            assert listed.error_code == cpb.UNKNOWN_TOPIC_OR_PARTITION, where
        assert await latest_offset(broker_cluster, leaders[0], "known", 0) == 0
        # and the broker still serves the partition that exists
        ok = await produce(address, "known", 0, records=[bpb.Record(value=b"x")])
        assert ok.error_code == cpb.NONE and ok.base_offset == 0

    asyncio.run(main())


def test_acks(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "acks", partitions=1, rf=1)
        leader = leaders[0]
        address = broker_cluster.brokers[leader].address
        records = [bpb.Record(value=b"a"), bpb.Record(value=b"b")]

        # acks=0: an empty response, but the records are written
        async with broker_stub(address) as stub:
            response = await stub.Produce(
                produce_request("acks", 0, records=records, acks=0), timeout=10
            )
        assert len(response.results) == 0

        async def written() -> bool | None:
            return True if await latest_offset(broker_cluster, leader, "acks", 0) == 2 else None

        await eventually(written, timeout_s=5, what="the acks=0 records written")

        # acks=-1 (all): with one replica, the leader
        result = await produce(address, "acks", 0, records=records, acks=-1)
        assert result.error_code == cpb.NONE and result.base_offset == 2
        result = await produce(address, "acks", 0, records=records, acks=1)
        assert result.error_code == cpb.NONE and result.base_offset == 4

        # anything else: INVALID_REQUIRED_ACKS, nothing written
        for acks in (2, -2, 5):
            result = await produce(address, "acks", 0, records=records, acks=acks)
            assert result.error_code == cpb.INVALID_REQUIRED_ACKS, code(result.error_code)
            assert str(acks) in result.error_message
        assert await latest_offset(broker_cluster, leader, "acks", 0) == 6
        values = [
            r.value for r in (await fetch(address, "acks", 0, 0, decode_records=True)).records
        ]
        assert values == [b"a", b"b"] * 3

    asyncio.run(main())


def test_fetch_long_poll_returns_when_data_arrives(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "poll", partitions=1, rf=1)
        address = broker_cluster.brokers[leaders[0]].address
        result = await produce(address, "poll", 0, records=[bpb.Record(value=b"old")])
        assert result.error_code == cpb.NONE

        # without new data a long poll waits its max_wait_ms, then answers empty
        started = time.monotonic()
        idle = await fetch(address, "poll", 0, 1, max_wait_ms=300)
        assert idle.error_code == cpb.NONE and idle.batches == b""
        assert 0.25 <= time.monotonic() - started < 5

        async with broker_stub(address) as stub:
            request = bpb.FetchRequest(
                replica_id=-1,
                max_wait_ms=10_000,
                min_bytes=1,
                decode_records=True,
                topics=[
                    bpb.FetchTopic(
                        topic="poll",
                        partitions=[bpb.FetchPartition(partition=0, fetch_offset=1)],
                    )
                ],
            )
            started = time.monotonic()
            call = asyncio.ensure_future(stub.Fetch(request, timeout=30))
            # an assertion, not synchronisation: with nothing to read it does not answer early
            done, _ = await asyncio.wait({call}, timeout=0.5)
            assert not done, "the long poll answered before any data arrived"
            produced_at = time.monotonic()
            result = await produce(address, "poll", 0, records=[bpb.Record(value=b"new")])
            assert result.error_code == cpb.NONE and result.base_offset == 1
            response = await call
            returned_at = time.monotonic()
        (polled,) = response.results
        assert polled.error_code == cpb.NONE
        assert [(r.offset, r.value) for r in polled.records] == [(1, b"new")]
        assert returned_at - produced_at < 5, f"woke {returned_at - produced_at:.2f}s after"
        assert returned_at - started < 5

    asyncio.run(main())


def test_fetch_max_bytes_caps_the_whole_response(broker_cluster: LocalCluster) -> None:
    async def main() -> None:
        leaders = await new_topic(broker_cluster, "capped", partitions=9, rf=1)
        broker = leaders[0]
        mine = [p for p, b in sorted(leaders.items()) if b == broker]
        assert len(mine) >= 2, leaders
        address = broker_cluster.brokers[broker].address
        sizes = []
        for p in mine:
            batch = build_batch([(NOW_MS, None, b"z" * 1000, ())])
            sizes.append(len(batch))
            result = await produce(address, "capped", p, batches=bytes(batch))
            assert result.error_code == cpb.NONE, result.error_message
        for max_bytes in (100, sizes[0] + sizes[1] // 2):
            request = bpb.FetchRequest(
                replica_id=-1,
                max_bytes=max_bytes,
                topics=[
                    bpb.FetchTopic(
                        topic="capped",
                        partitions=[bpb.FetchPartition(partition=p, fetch_offset=0) for p in mine],
                    )
                ],
            )
            async with broker_stub(address) as stub:
                response = await stub.Fetch(request, timeout=10)
            assert all(r.error_code == cpb.NONE for r in response.results)
            returned = [len(r.batches) for r in response.results]
            # the first batch comes back even when larger than the cap; nothing else past it
            assert returned[0] == sizes[0], returned
            assert sum(returned) == sizes[0], f"max_bytes={max_bytes}: got {returned}"

    asyncio.run(main())
