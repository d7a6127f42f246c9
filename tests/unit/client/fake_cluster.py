"""An in-process stand-in for the brokers' gRPC stubs: Metadata, Fetch (long poll, whole
batches from the one holding the fetch offset, up to the high watermark) and ListOffsets over
in-memory partition logs. The consumer runs unchanged on it (it only sees a
BrokerConnections whose stubs answer from here)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import grpc

from raftka.client.connections import BrokerConnections
from raftka.common.records.batch import read_batch_size, set_partition_leader_epoch
from raftka.common.records.builder import build_batch
from raftka.common.rpc.fetch_wire import FetchAnswer, FetchCall, decode_fetch_response
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from raftka.v1.common_pb2 import ErrorCode

EARLIEST, LATEST = -2, -1


@dataclass
class FakeBatch:
    base_offset: int
    next_offset: int
    data: bytes
    max_timestamp: int
    leader_epoch: int = 0


@dataclass
class FakePartition:
    leader: int
    leader_epoch: int = 0
    batches: list[FakeBatch] = field(default_factory=list)
    log_start: int = 0
    high_watermark: int | None = None
    """None: everything appended is committed."""
    damaged_from: int | None = None
    """Fetches at or past this offset answer CORRUPT_MESSAGE (a broker's damaged copy)."""

    @property
    def log_end(self) -> int:
        return self.batches[-1].next_offset if self.batches else self.log_start

    @property
    def hw(self) -> int:
        return self.log_end if self.high_watermark is None else self.high_watermark


def unavailable(address: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        details=f"failed to connect to {address}",
    )


class FakeCluster(BrokerConnections):
    def __init__(self, brokers: Sequence[int] = (1, 2, 3)) -> None:
        super().__init__()
        self.addresses = {b: f"127.0.0.{b}:9092" for b in brokers}
        self.partitions: dict[tuple[str, int], FakePartition] = {}
        self.down: set[int] = set()
        self.metadata_leaders: dict[tuple[str, int], int] = {}
        """Overrides what Metadata says leads a partition (stale metadata)."""
        self.metadata_epochs: dict[tuple[str, int], int] = {}
        """Leader epochs Metadata names instead of the current ones (a broker behind)."""
        self.fetches: list[tuple[str, pb.FetchRequest]] = []
        self.list_offsets: list[tuple[str, pb.ListOffsetsRequest]] = []
        self._appended = asyncio.Event()

    @property
    def bootstrap(self) -> list[str]:
        return list(self.addresses.values())

    # ------------------------------------------------------------------ test controls

    def create(self, topic: str, partitions: int = 1, leaders: Sequence[int] = ()) -> None:
        ids = list(self.addresses)
        for p in range(partitions):
            leader = leaders[p] if p < len(leaders) else ids[p % len(ids)]
            self.partitions[(topic, p)] = FakePartition(leader)

    def append(
        self,
        topic: str,
        partition: int,
        values: Sequence[bytes],
        *,
        timestamp: int = 1000,
        key: bytes | None = None,
        control: bool = False,
    ) -> int:
        """Append one batch of ``values``; return its base offset."""
        p = self.partitions[(topic, partition)]
        base = p.log_end
        data = build_batch(
            [(timestamp + i, key, v, ()) for i, v in enumerate(values)],
            base_offset=base,
            control=control,
        )
        set_partition_leader_epoch(data, p.leader_epoch)
        p.batches.append(
            FakeBatch(
                base, base + len(values), bytes(data), timestamp + len(values) - 1, p.leader_epoch
            )
        )
        self._notify()
        return base

    def move_leader(self, topic: str, partition: int, leader: int) -> None:
        p = self.partitions[(topic, partition)]
        p.leader, p.leader_epoch = leader, p.leader_epoch + 1
        self._notify()

    def unclean_election(self, topic: str, partition: int, leader: int, keep: int) -> None:
        """A replica that held only offsets below ``keep`` becomes leader in a new epoch: the
        log past ``keep`` is gone (batches are cut at batch boundaries)."""
        p = self.partitions[(topic, partition)]
        p.batches = [b for b in p.batches if b.next_offset <= keep]
        assert p.log_end == keep, "cut at a batch boundary"
        self.move_leader(topic, partition, leader)

    def epoch_end(self, p: FakePartition, epoch: int) -> tuple[int, int]:
        """The largest epoch <= ``epoch`` in the log and the offset where it ends."""
        older = [b for b in p.batches if b.leader_epoch <= epoch]
        if not older:
            return -1, -1
        found = max(b.leader_epoch for b in older)
        later = [b.base_offset for b in p.batches if b.leader_epoch > found]
        return found, min(later) if later else p.log_end

    def set_high_watermark(self, topic: str, partition: int, hw: int | None) -> None:
        self.partitions[(topic, partition)].high_watermark = hw
        self._notify()

    def truncate_start(self, topic: str, partition: int, log_start: int) -> None:
        p = self.partitions[(topic, partition)]
        p.batches = [b for b in p.batches if b.next_offset > log_start]
        p.log_start = log_start

    def _notify(self) -> None:
        event, self._appended = self._appended, asyncio.Event()
        event.set()

    def fetched_offsets(self, topic: str, partition: int) -> list[int]:
        return [
            fp.fetch_offset
            for _address, r in self.fetches
            for t in r.topics
            if t.topic == topic
            for fp in t.partitions
            if fp.partition == partition
        ]

    # ------------------------------------------------------------------ BrokerConnections

    def stub(self, address: str) -> BrokerServiceStub:
        return cast(BrokerServiceStub, _FakeStub(self, address))

    def fetch(self, address: str) -> FetchCall:
        """As BrokerConnections.fetch: the fake broker's answer, through the wire codec."""
        stub = _FakeStub(self, address)

        async def call(request: pb.FetchRequest, *, timeout: float) -> FetchAnswer:  # noqa: ASYNC109
            response = await stub.Fetch(request, timeout)
            return decode_fetch_response(response.SerializeToString())

        return call

    async def close(self) -> None:
        pass

    def broker_id(self, address: str) -> int:
        for b, a in self.addresses.items():
            if a == address:
                if b in self.down:
                    raise unavailable(address)
                return b
        raise unavailable(address)

    # ------------------------------------------------------------------ the RPCs

    def metadata(self, request: pb.MetadataRequest) -> pb.MetadataResponse:
        response = pb.MetadataResponse(cluster_id="fake", controller_id=-1)
        for b, address in self.addresses.items():
            if b not in self.down:
                host, port = address.rsplit(":", 1)
                response.brokers.add(broker_id=b, host=host, port=int(port))
        topics = sorted({t for t, _ in self.partitions})
        for name in request.topics or topics:
            entry = response.topics.add(name=name, topic_id=f"id-{name}")
            if name not in topics:
                entry.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            for (t, pid), p in sorted(self.partitions.items()):
                if t == name:
                    leader = self.metadata_leaders.get((t, pid), p.leader)
                    epoch = self.metadata_epochs.get((t, pid), p.leader_epoch)
                    entry.partitions.add(partition=pid, leader_id=leader, leader_epoch=epoch)
        return response

    def read(self, address: str, topic: str, fp: pb.FetchPartition) -> pb.FetchPartitionResult:
        result = pb.FetchPartitionResult(topic=topic, partition=fp.partition)
        p = self.partitions.get((topic, fp.partition))
        if p is None:
            result.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            return result
        if self.broker_id(address) != p.leader:
            result.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
            return result
        result.high_watermark, result.log_start_offset = p.hw, p.log_start
        if fp.HasField("current_leader_epoch") and fp.current_leader_epoch >= 0:
            if fp.current_leader_epoch < p.leader_epoch:
                result.error_code = ErrorCode.FENCED_LEADER_EPOCH
                return result
            if fp.current_leader_epoch > p.leader_epoch:
                result.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
                return result
        if fp.HasField("last_fetched_epoch") and fp.last_fetched_epoch >= 0:
            epoch, end = self.epoch_end(p, fp.last_fetched_epoch)
            if epoch != fp.last_fetched_epoch or end < fp.fetch_offset:
                result.diverging_epoch.epoch, result.diverging_epoch.end_offset = epoch, end
                return result
        if not p.log_start <= fp.fetch_offset <= p.log_end:
            result.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
            return result
        if p.damaged_from is not None and fp.fetch_offset >= p.damaged_from:
            result.error_code = ErrorCode.CORRUPT_MESSAGE
            result.error_message = f"{topic}-{fp.partition}: cannot serve offset {fp.fetch_offset}"
            return result
        out = bytearray()
        limit = fp.partition_max_bytes or 1 << 20
        for b in p.batches:
            if b.next_offset <= fp.fetch_offset or b.base_offset >= p.hw:
                continue
            if out and len(out) + len(b.data) > limit:
                break
            if p.damaged_from is not None and b.base_offset >= p.damaged_from:
                break
            out += b.data
        result.batches = bytes(out)
        return result

    def list_offset(
        self, address: str, topic: str, lp: pb.ListOffsetsPartition
    ) -> pb.ListOffsetsResult:
        result = pb.ListOffsetsResult(topic=topic, partition=lp.partition, offset=-1, timestamp=-1)
        p = self.partitions.get((topic, lp.partition))
        if p is None:
            result.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        elif self.broker_id(address) != p.leader:
            result.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
        elif lp.timestamp == EARLIEST:
            result.offset = p.log_start
        elif lp.timestamp == LATEST:
            result.offset = p.hw
        else:
            for b in p.batches:
                if b.base_offset < p.hw and b.max_timestamp >= lp.timestamp:
                    result.offset, result.timestamp = b.base_offset, b.max_timestamp
                    break
        return result


class _FakeStub:
    def __init__(self, cluster: FakeCluster, address: str) -> None:
        self._cluster = cluster
        self._address = address

    async def Metadata(
        self,
        request: pb.MetadataRequest,
        timeout: float,  # noqa: ASYNC109  (the stub's signature)
    ) -> pb.MetadataResponse:
        self._cluster.broker_id(self._address)
        return self._cluster.metadata(request)

    async def Fetch(
        self,
        request: pb.FetchRequest,
        timeout: float,  # noqa: ASYNC109
    ) -> pb.FetchResponse:
        c = self._cluster
        c.broker_id(self._address)
        c.fetches.append((self._address, request))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + request.max_wait_ms / 1000
        while True:
            wake = c._appended
            response = pb.FetchResponse()
            for t in request.topics:
                for fp in t.partitions:
                    response.results.append(c.read(self._address, t.topic, fp))
            remaining = deadline - loop.time()
            if remaining <= 0 or any(r.batches or r.error_code for r in response.results):
                return response
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), remaining)
            c.broker_id(self._address)  # went down while waiting

    async def ListOffsets(
        self,
        request: pb.ListOffsetsRequest,
        timeout: float,  # noqa: ASYNC109
    ) -> pb.ListOffsetsResponse:
        self._cluster.broker_id(self._address)
        self._cluster.list_offsets.append((self._address, request))
        response = pb.ListOffsetsResponse()
        for t in request.topics:
            for lp in t.partitions:
                response.results.append(self._cluster.list_offset(self._address, t.topic, lp))
        return response


def split_batches_of(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = read_batch_size(data, pos)
        out.append(data[pos : pos + size])
        pos += size
    return out
