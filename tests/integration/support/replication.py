"""Shared by the replication tests: one topic ``rep`` with one partition, and ways to wait on
its state and to read what each broker holds on disk."""

from __future__ import annotations

import asyncio

import grpc

from raftka.common.data_dir import PARTITION_LOGS_DIR
from raftka.common.errors import RaftkaError
from raftka.common.records.decoder import iter_records
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import broker_pb2 as bpb
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from tests.conditions import eventually
from tests.integration.support.broker_rpc import LATEST, list_offset, produce
from tests.integration.support.quorum import client_for

TOPIC = "rep"


async def create(cluster: LocalCluster, min_isr: int = 2, rf: int = 3) -> None:
    async with client_for(cluster) as client:
        (r,) = await client.create_topics(
            [
                pb.NewTopic(
                    name=TOPIC,
                    num_partitions=1,
                    replication_factor=rf,
                    configs={"min.insync.replicas": str(min_isr)},
                )
            ]
        )
        # TOPIC_ALREADY_EXISTS: the client retried a create whose answer timed out (a loaded
        # machine) and the retry found the topic its first attempt made (each test's cluster
        # is new).
        assert r.error_code in (cpb.NONE, cpb.TOPIC_ALREADY_EXISTS), r.error_message
    p = await wait_isr(cluster, rf)

    async def leader_serves() -> bool | None:  # the leader broker has applied the metadata
        result = await list_offset(cluster.brokers[p.leader].address, TOPIC, 0, LATEST)
        return True if result.error_code == cpb.NONE else None

    await eventually(leader_serves, what="the leader broker serving the new partition")


async def partition_state(cluster: LocalCluster) -> pb.PartitionDescription:
    async with client_for(cluster, timeout_s=3.0) as client:
        (t,) = await client.describe_topics([TOPIC])
    return t.partitions[0]


async def wait_isr(
    cluster: LocalCluster, size: int, timeout_s: float = 30.0
) -> pb.PartitionDescription:
    async def probe() -> pb.PartitionDescription | None:
        p = await partition_state(cluster)
        return p if len(p.isr) == size and p.leader >= 0 else None

    return await eventually(probe, timeout_s=timeout_s, what=f"ISR of size {size}")


async def wait_leader(
    cluster: LocalCluster, exclude: int = -1, timeout_s: float = 20.0
) -> pb.PartitionDescription:
    """Until the partition has a leader other than ``exclude``; on timeout the error names the
    last leader, epoch and ISR seen (so a failure shows whether anyone was eligible)."""
    seen: list[pb.PartitionDescription] = []

    async def probe() -> pb.PartitionDescription | None:
        p = await partition_state(cluster)
        seen[:] = [p]
        return p if p.leader >= 0 and p.leader != exclude else None

    try:
        return await eventually(probe, timeout_s=timeout_s, what="a partition leader")
    except AssertionError as e:
        last = (
            f"leader {seen[0].leader}, epoch {seen[0].leader_epoch}, ISR {list(seen[0].isr)}"
            if seen
            else "no answer from the controller"
        )
        raise AssertionError(f"{e}; last seen: {last}") from None


def records_on_disk(cluster: LocalCluster, broker: int) -> list[tuple[int, bytes]]:
    """(offset, value) of every record in the broker's log files for rep-0."""
    directory = cluster.brokers[broker].data_dir / PARTITION_LOGS_DIR / f"{TOPIC}-0"
    data = b"".join(p.read_bytes() for p in sorted(directory.glob("*.log")))
    return [(r.offset, r.value or b"") for r in iter_records(data)]


def cpb_record(value: bytes) -> bpb.Record:
    return bpb.Record(value=value)


async def produce_when_leading(address: str, value: bytes) -> bool | None:
    """Produce once the broker has applied its leadership and the ISR is back to
    min.insync.replicas (NOT_LEADER_OR_FOLLOWER and NOT_ENOUGH_REPLICAS: nothing written, try
    again; on a loaded 2-core machine a live follower may miss its session for a moment and be
    fenced out of the ISR until its next heartbeat, as CI saw once)."""
    r = await produce(address, TOPIC, 0, records=[cpb_record(value)], acks=-1)
    if r.error_code in (cpb.NOT_LEADER_OR_FOLLOWER, cpb.NOT_ENOUGH_REPLICAS):
        return None
    assert r.error_code == cpb.NONE, r.error_message
    return True


async def leader_sees_isr(address: str, size: int) -> bool | None:
    async with grpc.aio.insecure_channel(address) as channel:
        meta = await BrokerServiceStub(channel).Metadata(
            bpb.MetadataRequest(topics=[TOPIC]), timeout=5
        )
    return True if len(meta.topics[0].partitions[0].isr) == size else None


async def replicas_agree(cluster: LocalCluster, brokers: list[int]) -> bool | None:
    contents = [records_on_disk(cluster, b) for b in brokers]
    return True if all(c == contents[0] for c in contents) else None


class AckedWrites:
    """Writes unique values (``<prefix><n>``, never retried) to ``rep-0`` with acks=all through
    whichever broker the controller names as leader, one at a time, until stopped; keeps the
    acknowledged ones with their offsets. Failures expected while leadership moves (a broker
    that does not answer, no leader yet, a refused write) are counted and the last one kept, so
    a test that times out says why; anything else fails the writer and the test."""

    def __init__(self, cluster: LocalCluster, prefix: str) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self.acked: dict[bytes, int] = {}
        self.failures = 0
        self.last_failure = "none"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def at_least(self, n: int) -> bool:
        """A probe for ``eventually``: True once ``n`` writes are acknowledged. Until then it
        raises RaftkaError saying how far it got (``eventually`` shows the last such message
        when it gives up); a writer that died re-raises its error."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise AssertionError("the writer stopped before it was asked to")
        await asyncio.sleep(0)  # let the writer run between probes
        if len(self.acked) >= n:
            return True
        raise RaftkaError(
            f"{len(self.acked)} of {n} writes acknowledged; {self.failures} failed, the last "
            f"with: {self.last_failure}"
        )

    async def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            i += 1
            value = f"{self.prefix}{i}".encode()
            try:
                p = await partition_state(self.cluster)
                if p.leader < 0:
                    self._failed("no leader")
                    continue
                r = await produce(
                    self.cluster.brokers[p.leader].address,
                    TOPIC,
                    0,
                    records=[cpb_record(value)],
                    acks=-1,
                )
            except grpc.aio.AioRpcError as e:
                self._failed(f"{e.code().name}: {e.details()}")
                continue
            except RaftkaError as e:
                self._failed(e.message)
                continue
            if r.error_code == cpb.NONE:
                self.acked[value] = r.base_offset
            else:
                self._failed(f"{cpb.ErrorCode.Name(r.error_code)}: {r.error_message}")

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.last_failure = why
