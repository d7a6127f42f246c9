"""Damage at rest is repaired from the other replicas and never served, with real processes:
bytes flipped inside a stored batch's records (the CRC-32C covers them; the header's offsets are
left alone) are found by the background scrubber (or by a read), logged, and repaired: a
follower cuts its log at the damage and fetches the rest again (leaving the ISR at once, as its
log is now shorter than the high watermark, and rejoining when caught up); a leader hands
leadership to another in-sync replica first. Meanwhile no Fetch ever returns a record that
differs from what was written."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.records.errors import CorruptRecordError
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import fetch, produce
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
)
from tests.integration.support.replication import (
    TOPIC,
    create,
    partition_state,
    records_on_disk,
    replicas_agree,
    wait_isr,
    wait_leader,
)

pytestmark = pytest.mark.integration

SCRUB_BYTES_PER_SECOND = 10 << 20
"""A fast scrubber: the whole (small) log is re-read many times a second."""
BATCHES, RECORDS_PER_BATCH, VALUE_SIZE = 40, 5, 100
HEADER = 61
"""Bytes of a v2 batch header; the records follow."""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path / "c", broker_settings={"scrub_bytes_per_second": SCRUB_BYTES_PER_SECOND}
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def segment_of(cluster: LocalCluster, broker: int) -> Path:
    """The broker's one segment of rep-0 (the test writes far less than a segment holds)."""
    directory = cluster.brokers[broker].data_dir / PARTITION_LOGS_DIR / f"{TOPIC}-0"
    (segment,) = sorted(directory.glob("*.log"))
    return segment


def flip_record_bytes(segment: Path) -> int:
    """Inverts 3 bytes in the middle of the records of the segment's middle batch, in place
    (the file keeps its size; a running broker sees the change in the page cache). Returns
    the damaged batch's base offset."""
    data = segment.read_bytes()
    batches: list[tuple[int, int, int]] = []  # (position, base offset, size)
    position = 0
    while position + 12 <= len(data):
        base = int.from_bytes(data[position : position + 8], "big")
        size = 12 + int.from_bytes(data[position + 8 : position + 12], "big")
        batches.append((position, base, size))
        position += size
    assert len(batches) >= BATCHES, f"{segment} holds {len(batches)} batches"
    position, base, size = batches[len(batches) // 2]
    at = position + HEADER + (size - HEADER) // 2
    with segment.open("r+b") as f:
        f.seek(at)
        original = f.read(3)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in original))
    return base


def event_order(cluster: LocalCluster, node_id: int, *events: str) -> list[int]:
    """The line number of the first occurrence of each event in the node's log (-1: none)."""
    first = dict.fromkeys(events, -1)
    for n, line in enumerate(
        cluster.node(node_id).log_path.read_text(errors="replace").splitlines()
    ):
        try:
            event = json.loads(line).get("event")
        except (ValueError, AttributeError):
            continue
        if event in first and first[event] < 0:
            first[event] = n
    return [first[e] for e in events]


async def write_all(cluster: LocalCluster, leader: int) -> dict[int, bytes]:
    """BATCHES produce requests of RECORDS_PER_BATCH records with acks=all; {offset: value}."""
    written: dict[int, bytes] = {}
    address = cluster.brokers[leader].address
    for i in range(BATCHES):
        values = [
            f"v{i:03d}-{j}-".encode().ljust(VALUE_SIZE, b"x") for j in range(RECORDS_PER_BATCH)
        ]
        r = await produce(address, TOPIC, 0, records=[bpb.Record(value=v) for v in values], acks=-1)
        assert r.error_code == cpb.NONE, r.error_message
        written.update((r.base_offset + j, v) for j, v in enumerate(values))
    return written


async def read_all(cluster: LocalCluster, end: int) -> dict[int, bytes] | None:
    """Every record below ``end`` through the partition's current leader, decoded by it
    (decode_records); None when leadership moved meanwhile (a probe for ``eventually``)."""
    address = cluster.brokers[(await partition_state(cluster)).leader].address
    got: dict[int, bytes] = {}
    offset = 0
    while offset < end:
        r = await fetch(address, TOPIC, 0, offset, decode_records=True)
        if r.error_code == cpb.NOT_LEADER_OR_FOLLOWER:
            return None
        assert r.error_code == cpb.NONE, f"{cpb.ErrorCode.Name(r.error_code)}: {r.error_message}"
        assert r.records, f"nothing at {offset} (high watermark {r.high_watermark})"
        got.update((rec.offset, rec.value) for rec in r.records)
        offset = r.records[-1].offset + 1
    return got


class Reader:
    """Reads rep-0 from every broker with decode_records, over and over, until stopped;
    remembers every record whose value differs from what was written (there must be none)
    and counts the records checked and the CORRUPT_MESSAGE answers."""

    def __init__(self, cluster: LocalCluster, written: dict[int, bytes]) -> None:
        self.cluster = cluster
        self.written = written
        self.checked = 0
        self.corrupt_answers = 0
        self.altered: list[tuple[int, int, bytes]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        end = max(self.written) + 1
        while not self._stop.is_set():
            for broker, node in self.cluster.brokers.items():
                offset = 0
                while offset < end and not self._stop.is_set():
                    try:
                        r = await fetch(node.address, TOPIC, 0, offset, decode_records=True)
                    except grpc.aio.AioRpcError:
                        break
                    if r.error_code == cpb.CORRUPT_MESSAGE:
                        self.corrupt_answers += 1
                    if r.error_code != cpb.NONE or not r.records:
                        break
                    for rec in r.records:
                        self.checked += 1
                        if self.written.get(rec.offset) != rec.value:
                            self.altered.append((broker, rec.offset, rec.value))
                    offset = r.records[-1].offset + 1
            await asyncio.sleep(0.01)


def test_damaged_follower_and_leader_are_repaired_from_the_isr(cluster: LocalCluster) -> None:
    async def main() -> None:
        await create(cluster, min_isr=2)
        leader = (await partition_state(cluster)).leader
        written = await write_all(cluster, leader)
        everything = sorted(written.items())
        await eventually(
            lambda: replicas_agree(cluster, list(cluster.brokers)), what="3 equal replicas"
        )

        # (a) A follower's segment is damaged while it is down (after a clean stop).
        follower = next(b for b in cluster.brokers if b != leader)
        assert cluster.stop(follower) == 0
        damaged_at = flip_record_bytes(segment_of(cluster, follower))
        with pytest.raises(CorruptRecordError):  # the flip broke that batch's CRC
            records_on_disk(cluster, follower)
        cluster.start(follower)

        async def follower_repaired() -> bool | None:
            found, repairing = event_order(
                cluster, follower, "log_damage_found", "log_damage_repairing"
            )
            return True if 0 <= found < repairing else None

        await eventually(follower_repaired, timeout_s=20, what=f"broker {follower} repairing")
        (found,) = log_events(cluster, follower, "log_damage_found")
        assert found["offset"] == damaged_at and found["source"] in ("scrub", "open"), found
        await wait_isr(cluster, 3)
        await eventually(
            lambda: replicas_agree(cluster, list(cluster.brokers)), what="repaired follower"
        )
        assert records_on_disk(cluster, follower) == everything

        # (a') The other follower's segment is damaged while it runs and is in the ISR: it
        # cuts its log below the high watermark, so the leader takes it out of the ISR on its
        # next fetch (not a lag time later), and it rejoins once caught up.
        leader = (await partition_state(cluster)).leader
        other = next(b for b in cluster.brokers if b not in (leader, follower))
        damaged_at = flip_record_bytes(segment_of(cluster, other))

        async def other_repaired() -> bool | None:
            found, repairing = event_order(
                cluster, other, "log_damage_found", "log_damage_repairing"
            )
            return True if 0 <= found < repairing else None

        await eventually(other_repaired, timeout_s=20, what=f"broker {other} repairing")
        (found,) = log_events(cluster, other, "log_damage_found")
        assert found["offset"] == damaged_at and found["source"] == "scrub", found

        async def taken_out_of_isr() -> bool | None:
            events = log_events(cluster, leader, "isr_member_below_high_watermark")
            return True if any(e["replica"] == other for e in events) else None

        await eventually(taken_out_of_isr, timeout_s=10, what=f"broker {other} out of the ISR")
        await wait_isr(cluster, 3)
        await eventually(
            lambda: replicas_agree(cluster, list(cluster.brokers)), what="repaired follower"
        )
        assert records_on_disk(cluster, other) == everything

        # (b) The leader's segment is damaged while it runs: it resigns, another ISR member
        # leads, and no read anywhere returns an altered value meanwhile.
        before = await wait_isr(cluster, 3)
        leader = before.leader
        reader = Reader(cluster, written)
        reader.start()
        try:
            damaged_at = flip_record_bytes(segment_of(cluster, leader))

            async def resigned() -> bool | None:
                return True if log_events(cluster, leader, "leader_resigned_for_damage") else None

            await eventually(resigned, timeout_s=20, what=f"broker {leader} resigning")
            after = await wait_leader(cluster, exclude=leader)
            assert after.leader in before.isr, (before, after)
            # (leadership may move on, e.g. when a busy broker misses heartbeats: read through
            # whichever broker leads; the reader checks every broker all along)
            got = await eventually(lambda: read_all(cluster, len(written)), what="a full read")
            assert got == written
            await wait_isr(cluster, 3)
            await eventually(
                lambda: replicas_agree(cluster, list(cluster.brokers)), what="repaired leader"
            )
        finally:
            await reader.stop()
        assert not reader.altered, f"altered records served: {reader.altered[:5]}"
        assert reader.checked > 0
        (found,) = log_events(cluster, leader, "log_damage_found")
        assert found["offset"] == damaged_at, found
        assert log_events(cluster, leader, "log_damage_repairing")
        assert records_on_disk(cluster, leader) == everything

    asyncio.run(main())
