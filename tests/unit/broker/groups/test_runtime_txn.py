"""Transactional offsets through the coordinator runtime, with the real group shard and the
in-memory log: their own transactional batches, markers written then applied, replay of
records and markers after a reload, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raftka.broker.groups.api import GroupConfig, StoredMarker, StoredRecord
from raftka.broker.groups.placement import OFFSETS_TOPIC, partition_for
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.transactions.marker_writer import MarkerWriter
from raftka.common.errors import CoordinatorLoadInProgressError, InvalidProducerEpochError
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.txn_errors import TransactionCoordinatorFencedError
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import until
from tests.unit.broker.groups.fakes import FakeLog, FakeMetadata

BROKER = 1
GROUP = "a"
P = partition_for(GROUP, 4)
NOW = 1_700_000_000_000
PRODUCER = (42, 3)


class Harness:
    def __init__(self) -> None:
        self.log = FakeLog()
        self.meta = FakeMetadata()
        self.shards: list[ConsumerGroupShard] = []
        self.coordinator = GroupCoordinator(
            offsets_log=self.log,
            metadata=self.meta,
            shard_factory=self._new_shard,
            broker_id=BROKER,
            clock=lambda: NOW,
        )

    def _new_shard(self, partition: int) -> ConsumerGroupShard:
        shard = ConsumerGroupShard(partition, GroupConfig())
        self.shards.append(shard)
        return shard

    async def lead(self, epoch: int = 5) -> None:
        count = len(self.shards)
        self.log.led[P] = epoch
        self.meta.leaders[P] = BROKER
        self.coordinator.sync()
        await until(lambda: self._is_loaded(count), what="shard loaded")

    def _is_loaded(self, count: int) -> bool:
        slot = self.coordinator._slots.get(P)
        return len(self.shards) > count and slot is not None and slot.loaded

    async def commit(self, offset: int, partition: int = 0) -> int:
        request = gpb.OffsetCommitRequest(group_id=GROUP, member_epoch=-1)
        request.topics.add(name="events").partitions.add(partition=partition, offset=offset)
        response = await self.coordinator.write(
            GROUP,
            lambda shard, now: shard.commit_offsets(request, now_ms=now, topics={"events": 3}),
        )
        return int(response.topics[0].partitions[0].error_code)

    async def txn_commit(
        self, offset: int, partition: int = 0, producer: tuple[int, int] = PRODUCER
    ) -> int:
        request = gpb.TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id=GROUP,
            producer_id=producer[0],
            producer_epoch=producer[1],
            member_epoch=-1,
        )
        request.topics.add(name="events").partitions.add(partition=partition, offset=offset)
        response = await self.coordinator.write(
            GROUP,
            lambda shard, now: shard.txn_commit_offsets(request, now_ms=now, topics={"events": 3}),
        )
        return int(response.topics[0].partitions[0].error_code)

    async def marker(self, committed: bool, producer: tuple[int, int] = PRODUCER) -> None:
        await self.coordinator.complete_transaction(P, producer[0], producer[1] + 1, committed, 0)

    async def fetch(self, *, require_stable: bool = False) -> gpb.OffsetFetchResponse:
        request = gpb.OffsetFetchRequest(
            group_id=GROUP,
            topics=[gpb.GroupTopicPartitions(topic="events", partitions=[0, 1])],
            require_stable=require_stable,
        )
        return await self.coordinator.read(GROUP, lambda shard: shard.fetch_offsets(request))

    async def offsets(self) -> list[int]:
        response = await self.fetch()
        return [p.offset for t in response.topics for p in t.partitions]


def run(test: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        h = Harness()
        try:
            await test(h)
        finally:
            await h.coordinator.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_txn_commit_gets_a_transactional_batch_of_its_own_in_call_order() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        codes = await asyncio.gather(h.commit(1), h.txn_commit(2, 1), h.commit(3))
        assert list(codes) == [ErrorCode.NONE] * 3
        assert h.log.producers == [None, PRODUCER, None]
        stored = [r for r in h.log.records[P] if isinstance(r, StoredRecord)]
        assert [r.producer_id for r in stored] == [-1, PRODUCER[0], -1]
        assert await h.offsets() == [3, -1]  # the transactional offset is pending

    run(body)


def test_the_marker_is_written_then_settles_the_pending_offsets() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        await h.commit(5)
        await h.txn_commit(9)
        stable = await h.fetch(require_stable=True)
        assert stable.error_code == ErrorCode.UNSTABLE_OFFSET_COMMIT
        await h.marker(committed=True)
        assert h.log.records[P][-1] == StoredMarker(PRODUCER[0], PRODUCER[1] + 1, True)
        assert await h.offsets() == [9, -1]
        assert (await h.fetch(require_stable=True)).error_code == ErrorCode.NONE
        await h.txn_commit(20, producer=(PRODUCER[0], PRODUCER[1] + 1))
        await h.marker(committed=False, producer=(PRODUCER[0], PRODUCER[1] + 1))
        assert await h.offsets() == [9, -1]

    run(body)


def test_a_reload_replays_transactional_records_and_markers_in_log_order() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        await h.commit(5)
        await h.txn_commit(9)  # committed below
        await h.txn_commit(7, 1, producer=(43, 0))  # still open at the reload
        await h.marker(committed=True)
        await h.txn_commit(11, producer=(44, 0))  # aborted below
        await h.marker(committed=False, producer=(44, 0))
        await h.lead(epoch=6)  # a new leader epoch: the shard is loaded again from the log
        assert len(h.shards) == 2
        assert await h.offsets() == [9, -1]
        assert (await h.fetch(require_stable=True)).error_code == (ErrorCode.UNSTABLE_OFFSET_COMMIT)
        await h.marker(committed=True, producer=(43, 0))  # the open one's marker arrives
        assert await h.offsets() == [9, 7]

    run(body)


def test_a_marker_for_a_partition_not_loaded_here_is_retried_by_the_sender() -> None:
    async def body(h: Harness) -> None:
        h.meta.leaders[P] = 2
        with pytest.raises(NotCoordinatorError):
            await h.marker(committed=True)
        h.log.gate.clear()
        h.log.led[P] = 5
        h.meta.leaders[P] = BROKER
        h.coordinator.sync()
        with pytest.raises(CoordinatorLoadInProgressError):
            await h.marker(committed=True)
        assert P not in h.log.records  # nothing written
        h.log.gate.set()

    run(body)


def test_a_refused_marker_changes_nothing_and_keeps_the_shard() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        await h.txn_commit(9)
        h.log.fail_next = TransactionCoordinatorFencedError("an older coordinator epoch")
        with pytest.raises(TransactionCoordinatorFencedError):
            await h.marker(committed=True)
        assert len(h.shards) == 1  # not reloaded: nothing was written
        assert (await h.fetch(require_stable=True)).error_code == (ErrorCode.UNSTABLE_OFFSET_COMMIT)

    run(body)


def test_a_transactional_batch_refused_by_the_partition_answers_its_error() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        h.log.fail_next = InvalidProducerEpochError("producer 42 has epoch 4 here")
        with pytest.raises(InvalidProducerEpochError):
            await h.txn_commit(9)
        await until(lambda: h._is_loaded(1), what="reloaded")
        assert (await h.fetch(require_stable=True)).error_code == ErrorCode.NONE
        assert await h.offsets() == [-1, -1]

    run(body)


class _LeadsEverything:
    """The MarkerWriter's view of the hosted partitions: this broker leads them all."""

    def leader_partition(self, topic: str, partition: int) -> object:
        return object()


def test_write_txn_markers_for_consumer_offsets_goes_through_the_group_coordinator() -> None:
    async def body(h: Harness) -> None:
        await h.lead()
        await h.txn_commit(9)
        writer = MarkerWriter(
            _LeadsEverything(),  # type: ignore[arg-type]
            group_marker=h.coordinator.complete_transaction,
        )
        marker = tpb.TxnMarker(
            producer_id=PRODUCER[0],
            producer_epoch=PRODUCER[1] + 1,
            committed=True,
            coordinator_epoch=0,
            topics=[tpb.TxnTopicPartitions(topic=OFFSETS_TOPIC, partitions=[P, P + 1])],
        )
        response = await writer.write(tpb.WriteTxnMarkersRequest(markers=[marker]))
        codes = [p.error_code for m in response.markers for p in m.partitions]
        # P + 1 is not loaded here: the coordinator retries it at its leader.
        assert codes == [ErrorCode.NONE, ErrorCode.NOT_LEADER_OR_FOLLOWER]
        assert h.log.records[P][-1] == StoredMarker(PRODUCER[0], PRODUCER[1] + 1, True)
        assert await h.offsets() == [9, -1]

    run(body)
