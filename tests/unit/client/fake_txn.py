"""A fake cluster for transactional clients: FakeCluster's Metadata / Fetch / ListOffsets,
plus in-process Produce and InitProducerId (BrokerService), TransactionService
(AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and GroupService (FindCoordinator of both key
types, TxnOffsetCommit, OffsetFetch). Node 1 coordinates everything; other nodes answer
NOT_COORDINATOR.

It keeps one ordered ``events`` list of what the client called, so tests can assert the
sequence, checks what a real coordinator and leader check (a transactional batch only for an
added partition, the current epoch), writes COMMIT / ABORT markers (contract decision 4) on
EndTxn, and answers read_committed fetches with the aborted transactions in range, so a
consumer can read what a producer wrote. ``fail_next[rpc]`` makes the next calls of an RPC
fail with the given errors, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import grpc

from raftka.client.types import TopicPartition
from raftka.common import group_errors, txn_errors
from raftka.common.errors import RaftkaError
from raftka.common.records.batch import BatchHeader, set_base_offset, set_partition_leader_epoch
from raftka.common.records.control import build_end_txn_marker
from raftka.common.rpc.status import status_for, trailing_metadata_for
from raftka.v1 import broker_pb2 as pb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.client.fake_cluster import FakeBatch, FakeCluster, _FakeStub

PRODUCER_ID = 5000


def rpc_error(error: RaftkaError) -> grpc.aio.AioRpcError:
    """How a real server's failed call reaches the client."""
    return grpc.aio.AioRpcError(
        status_for(error),
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailing_metadata_for(error)),
        details=error.message,
    )


def marker_batch(
    producer_id: int, epoch: int, committed: bool, coordinator_epoch: int = 0
) -> bytearray:
    """A control batch as a partition leader writes it (contract decision 4)."""
    return build_end_txn_marker(producer_id, epoch, committed, coordinator_epoch, timestamp=0)


@dataclass
class Txn:
    producer_id: int = PRODUCER_ID
    epoch: int = -1
    partitions: set[TopicPartition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    pending_offsets: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)


@dataclass
class Aborted:
    producer_id: int
    first_offset: int
    last_offset: int


class FakeTxnCluster(FakeCluster):
    def __init__(self, brokers: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__(brokers)
        self.coordinator = 1
        self.txn = Txn()
        self.events: list[tuple[str, Any]] = []
        self.fail_next: dict[str, list[RaftkaError]] = {}
        self.committed_offsets: dict[tuple[str, TopicPartition], int] = {}
        self.aborted: dict[TopicPartition, list[Aborted]] = {}
        self.open_first: dict[TopicPartition, int] = {}
        """First offset of the open transaction's data per partition."""
        self.produce_codes: dict[TopicPartition, list[int]] = {}
        """Error codes the next Produce of a partition answers, in order (NONE: as usual)."""
        self.unstable_fetches = 0
        """How many of the next require_stable OffsetFetch calls answer UNSTABLE_OFFSET_COMMIT."""
        self.max_epoch = 32766
        """Past it, EndTxn moves the producer to a fresh producer id with epoch 0."""
        self.add_codes: list[int] = []
        """Error codes the next AddPartitionsToTxn answer on every partition, in order."""

    # ------------------------------------------------------------------ test views

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def produced(self) -> list[tuple[TopicPartition, int, int, int, bool]]:
        """(partition, producer id, epoch, base sequence, transactional) per Produce batch."""
        return [d for k, d in self.events if k == "produce"]

    # ------------------------------------------------------------------ connections

    def stub(self, address: str) -> Any:
        return _BrokerStub(self, address)

    def produce(self, address: str) -> Any:
        return _BrokerStub(self, address).Produce

    def txn_stub(self, address: str) -> Any:
        return _Calls(self, address, ("AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn"))

    def group_stub(self, address: str) -> Any:
        return _Calls(self, address, ("FindCoordinator", "TxnOffsetCommit", "OffsetFetch"))

    # ------------------------------------------------------------------ the RPCs

    def check(self, rpc: str, address: str, *, coordinator: bool = True) -> None:
        self.broker_id(address)
        failures = self.fail_next.get(rpc)
        if failures:
            raise rpc_error(failures.pop(0))
        if coordinator and self.broker_id(address) != self.coordinator:
            raise rpc_error(group_errors.NotCoordinatorError(f"{address} does not coordinate"))

    def _epoch(self, producer_id: int, epoch: int) -> None:
        if producer_id != self.txn.producer_id or epoch < self.txn.epoch:
            raise rpc_error(txn_errors.ProducerFencedError(f"epoch {epoch} < {self.txn.epoch}"))

    def InitProducerId(self, r: pb.InitProducerIdRequest) -> pb.InitProducerIdResponse:
        self.events.append(("init", (r.transactional_id, r.transaction_timeout_ms)))
        if self.txn.partitions or self.txn.groups:
            self._end(False)
        self.txn.epoch += 1
        return pb.InitProducerIdResponse(
            producer_id=self.txn.producer_id, producer_epoch=self.txn.epoch
        )

    def AddPartitionsToTxn(
        self, r: tpb.AddPartitionsToTxnRequest
    ) -> tpb.AddPartitionsToTxnResponse:
        self._epoch(r.producer_id, r.producer_epoch)
        tps = [TopicPartition(t.topic, p) for t in r.topics for p in t.partitions]
        if self.add_codes:
            code = self.add_codes.pop(0)
            self.events.append(("add_refused", code))
            return tpb.AddPartitionsToTxnResponse(
                results=[
                    tpb.TxnPartitionResult(topic=tp.topic, partition=tp.partition, error_code=code)  # type: ignore[arg-type]
                    for tp in tps
                ]
            )
        self.events.append(("add_partitions", sorted(tps)))
        self.txn.partitions.update(tps)
        return tpb.AddPartitionsToTxnResponse(
            results=[tpb.TxnPartitionResult(topic=tp.topic, partition=tp.partition) for tp in tps]
        )

    def AddOffsetsToTxn(self, r: tpb.AddOffsetsToTxnRequest) -> tpb.AddOffsetsToTxnResponse:
        self._epoch(r.producer_id, r.producer_epoch)
        self.events.append(("add_offsets", r.group_id))
        self.txn.groups.add(r.group_id)
        return tpb.AddOffsetsToTxnResponse()

    def EndTxn(self, r: tpb.EndTxnRequest) -> tpb.EndTxnResponse:
        self._epoch(r.producer_id, r.producer_epoch)
        self.events.append(("end", (r.committed, r.producer_epoch)))
        if not (self.txn.partitions or self.txn.groups):
            raise rpc_error(txn_errors.InvalidTxnStateError("no transaction is open"))
        self._end(r.committed)
        return tpb.EndTxnResponse(producer_id=self.txn.producer_id, producer_epoch=self.txn.epoch)

    def _end(self, committed: bool) -> None:
        self.txn.epoch += 1
        if self.txn.epoch > self.max_epoch:  # as the coordinator does at epoch 32766
            self.txn.producer_id, self.txn.epoch = self.txn.producer_id + 1, 0
        for tp in sorted(self.txn.partitions):
            base = self._append(tp, marker_batch(self.txn.producer_id, self.txn.epoch, committed))
            first = self.open_first.pop(tp, None)
            if not committed and first is not None:
                self.aborted.setdefault(tp, []).append(Aborted(self.txn.producer_id, first, base))
        for (group, tp), offset in self.txn.pending_offsets.items():
            if committed:
                self.committed_offsets[(group, tp)] = offset
        self.txn.partitions.clear()
        self.txn.groups.clear()
        self.txn.pending_offsets.clear()

    def FindCoordinator(self, r: gpb.FindCoordinatorRequest) -> gpb.FindCoordinatorResponse:
        self.events.append(("find", (int(r.key_type), list(r.keys))))
        host, port = self.addresses[self.coordinator].rsplit(":", 1)
        return gpb.FindCoordinatorResponse(
            coordinators=[gpb.Coordinator(key=k, host=host, port=int(port)) for k in r.keys]
        )

    def TxnOffsetCommit(self, r: gpb.TxnOffsetCommitRequest) -> gpb.OffsetCommitResponse:
        self._epoch(r.producer_id, r.producer_epoch)
        self.events.append(("txn_offset_commit", r))
        response = gpb.OffsetCommitResponse()
        for t in r.topics:
            out = response.topics.add(name=t.name)
            for p in t.partitions:
                result = out.partitions.add(partition=p.partition)
                if r.group_id not in self.txn.groups:
                    result.error_code = ErrorCode.INVALID_TXN_STATE
                    continue
                self.txn.pending_offsets[(r.group_id, TopicPartition(t.name, p.partition))] = (
                    p.offset
                )
        return response

    def OffsetFetch(self, r: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
        self.events.append(("offset_fetch", r))
        if r.require_stable and self.unstable_fetches > 0:
            self.unstable_fetches -= 1
            return gpb.OffsetFetchResponse(
                error_code=ErrorCode.UNSTABLE_OFFSET_COMMIT, error_message="pending"
            )
        response = gpb.OffsetFetchResponse()
        for t in r.topics:
            out = response.topics.add(name=t.topic)
            for p in t.partitions:
                offset = self.committed_offsets.get((r.group_id, TopicPartition(t.topic, p)), -1)
                out.partitions.add(partition=p, offset=offset, leader_epoch=-1)
        return response

    def produce_request(self, address: str, r: pb.ProduceRequest) -> pb.ProduceResponse:
        response = pb.ProduceResponse()
        for t in r.topics:
            for p in t.partitions:
                tp = TopicPartition(t.topic, p.partition)
                h = BatchHeader.parse(p.batches)
                self.events.append(
                    (
                        "produce",
                        (tp, h.producer_id, h.producer_epoch, h.base_sequence, h.is_transactional),
                    )
                )
                result = response.results.add(topic=t.topic, partition=p.partition)
                codes = self.produce_codes.get(tp)
                code = codes.pop(0) if codes else ErrorCode.NONE
                if code != ErrorCode.NONE:
                    result.error_code = code  # type: ignore[assignment]
                    result.base_offset = -1
                elif h.is_transactional and tp not in self.txn.partitions:
                    result.error_code = ErrorCode.INVALID_TXN_STATE
                    result.base_offset = -1
                elif h.is_transactional and h.producer_epoch < self.txn.epoch:
                    result.error_code = ErrorCode.INVALID_PRODUCER_EPOCH
                    result.base_offset = -1
                else:
                    base = self._append(tp, bytearray(p.batches))
                    if h.is_transactional:
                        self.open_first.setdefault(tp, base)
                    result.base_offset = base
                    result.log_append_time_ms = -1
        return response

    def _append(self, tp: TopicPartition, data: bytearray) -> int:
        part = self.partitions[(tp.topic, tp.partition)]
        base = part.log_end
        set_base_offset(data, base)
        set_partition_leader_epoch(data, part.leader_epoch)
        h = BatchHeader.parse(data)
        part.batches.append(FakeBatch(base, h.next_offset, bytes(data), h.max_timestamp))
        self._notify()
        return base

    def read(self, address: str, topic: str, fp: pb.FetchPartition) -> pb.FetchPartitionResult:
        result = super().read(address, topic, fp)
        for a in self.aborted.get(TopicPartition(topic, fp.partition), []):
            if a.last_offset >= fp.fetch_offset:
                result.aborted_transactions.add(
                    producer_id=a.producer_id, first_offset=a.first_offset
                )
        return result


class _BrokerStub(_FakeStub):
    def __init__(self, cluster: FakeTxnCluster, address: str) -> None:
        super().__init__(cluster, address)
        self._txn_cluster = cluster

    async def Produce(self, data: bytes, **_kw: Any) -> pb.ProduceResponse:
        self._txn_cluster.check("Produce", self._address, coordinator=False)
        return self._txn_cluster.produce_request(self._address, pb.ProduceRequest.FromString(data))

    async def InitProducerId(
        self, request: pb.InitProducerIdRequest, **_kw: Any
    ) -> pb.InitProducerIdResponse:
        self._txn_cluster.check("InitProducerId", self._address)
        return self._txn_cluster.InitProducerId(request)


class _Calls:
    """A stub whose methods call the cluster's method of the same name, after its checks."""

    def __init__(self, cluster: FakeTxnCluster, address: str, names: tuple[str, ...]) -> None:
        self._cluster = cluster
        self._address = address
        self._names = names

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in self._names:
            raise AttributeError(name)
        handler = getattr(self._cluster, name)
        cluster, address = self._cluster, self._address

        async def call(request: Any, **_kw: Any) -> Any:
            cluster.check(name, address, coordinator=name != "FindCoordinator")
            return handler(request)

        return cast(Callable[..., Any], call)
