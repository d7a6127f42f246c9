"""An in-process stand-in for partition leaders, for producer tests: it appends batches,
checks producer sequences as a broker does (last five batches per producer, gaps refused,
duplicates answered with their original offset), and misbehaves on demand: refusing with
NOT_LEADER_OR_FOLLOWER, losing the answer after writing, answering late (reordering)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import grpc

from raftka.common.records.batch import BatchHeader
from raftka.common.records.decoder import iter_records
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode


@dataclass
class ProducerEntry:
    epoch: int
    batches: list[tuple[int, int, int]] = field(default_factory=list)
    """(first sequence, last sequence, base offset) of the last five batches."""


@dataclass
class FakePartition:
    values: list[bytes] = field(default_factory=list)
    producers: dict[int, ProducerEntry] = field(default_factory=dict)

    def append(self, data: bytes) -> tuple[int, int]:
        """(error code, base offset)"""
        h = BatchHeader.parse(data)
        values = [r.value or b"" for r in iter_records(data)]
        if h.producer_id >= 0:
            entry = self.producers.get(h.producer_id)
            first, last = h.base_sequence, h.base_sequence + h.last_offset_delta
            if entry is not None:
                if h.producer_epoch < entry.epoch:
                    return ErrorCode.INVALID_PRODUCER_EPOCH, -1
                for first_seq, last_seq, offset in entry.batches:
                    if (first_seq, last_seq) == (first, last):
                        # As the real broker does: a retry of one of the last five batches is
                        # answered like the first attempt, with its original offset.
                        return ErrorCode.NONE, offset
                expected = entry.batches[-1][1] + 1 if entry.batches else 0
                if first != expected:
                    return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1
            elif first != 0:
                return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, -1
            entry = self.producers.setdefault(h.producer_id, ProducerEntry(h.producer_epoch))
            entry.batches = [*entry.batches, (first, last, len(self.values))][-5:]
        base = len(self.values)
        self.values.extend(values)
        return ErrorCode.NONE, base


class FakeLeaders:
    """Every partition led by "leader-a" (or as ``leaders`` says); ``refreshes`` counts
    metadata refreshes the producer asked for."""

    def __init__(
        self,
        rng: random.Random | None = None,
        *,
        refuse: float = 0.0,
        lose_answer: float = 0.0,
        max_delay_s: float = 0.0,
    ) -> None:
        self.rng = rng or random.Random(0)
        self.refuse = refuse
        self.lose_answer = lose_answer
        self.max_delay_s = max_delay_s
        self.partitions: dict[tuple[str, int], FakePartition] = {}
        self.requests = 0
        self.refreshes = 0
        self.next_producer_id = 1000
        self.leaders: dict[tuple[str, int], str | None] = {}
        self.epochs: dict[tuple[str, int], int] = {}
        self.unreachable: list[str] = []
        self.lost_answers = 0

    # -- what the sender sees as metadata and stubs --

    def leader_address(self, topic: str, partition: int) -> str | None:
        return self.leaders.get((topic, partition), "leader-a")

    def leader_epoch(self, topic: str, partition: int) -> int:
        return self.epochs.get((topic, partition), 0)

    async def refresh(self, topics: Iterable[str] = ()) -> None:
        self.refreshes += 1

    def note_unreachable(self, address: str) -> None:
        self.unreachable.append(address)

    def produce_for(self, address: str) -> Callable[..., Awaitable[pb.ProduceResponse]]:
        return self.Produce

    async def init_producer_id(self) -> tuple[int, int]:
        self.next_producer_id += 1
        return self.next_producer_id, 0

    async def Produce(self, data: bytes, **_call: float) -> pb.ProduceResponse:
        request = pb.ProduceRequest.FromString(data)
        self.requests += 1
        if self.max_delay_s:
            await asyncio.sleep(self.rng.uniform(0, self.max_delay_s))
        response = pb.ProduceResponse()
        for t in request.topics:
            for p in t.partitions:
                result = response.results.add(topic=t.topic, partition=p.partition)
                if self.rng.random() < self.refuse:
                    result.error_code = ErrorCode.NOT_LEADER_OR_FOLLOWER
                    result.base_offset = -1
                    continue
                part = self.partitions.setdefault((t.topic, p.partition), FakePartition())
                code, offset = part.append(p.batches)
                result.error_code = code  # type: ignore[assignment]
                result.base_offset = offset
                result.log_append_time_ms = -1
        if self.rng.random() < self.lose_answer:
            self.lost_answers += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                "connection reset (injected)",
            )
        return response

    def values(self, topic: str, partition: int) -> list[bytes]:
        part = self.partitions.get((topic, partition))
        return part.values if part else []
