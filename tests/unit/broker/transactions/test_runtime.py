"""The transaction coordinator's runtime with a fake shard, an in-memory log and a fake marker
sender: loading in the partition's leader epoch, producer ids, partition checks, marker jobs
after commit and after loading, unloading stopping them, ticks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raftka.broker.coordinator.api import StoredRecord
from raftka.broker.groups.placement import partition_for
from raftka.broker.transactions.api import InitProducerIdResult, TxnConfig
from raftka.broker.transactions.marker_sender import MarkerOutcome
from raftka.broker.transactions.runtime import TransactionCoordinator
from raftka.broker.transactions.shard import TransactionShard
from raftka.common.errors import CoordinatorLoadInProgressError
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.txn_errors import ConcurrentTransactionsError, ProducerFencedError
from raftka.v1 import transactions_pb2 as tpb
from tests.conditions import eventually, until
from tests.unit.broker.groups.fakes import FakeLog
from tests.unit.broker.transactions.fakes import (
    FakeMarkers,
    FakeOffsetsTopic,
    FakeProducerIds,
    FakeTxnShard,
    FakeTxnTopic,
)

BROKER = 1
TID = "t1"
P = partition_for(TID, 4)
NOW = 1_700_000_000_000


class Harness:
    def __init__(self) -> None:
        self.now = NOW
        self.log = FakeLog()
        self.topic = FakeTxnTopic()
        self.offsets = FakeOffsetsTopic()
        self.markers = FakeMarkers()
        self.ids = FakeProducerIds()
        self.shards: list[FakeTxnShard] = []
        self.coordinator = TransactionCoordinator(
            internal_log=self.log,
            topic=self.topic,
            offsets_topic=self.offsets,
            shard_factory=self._new_shard,
            producer_ids=self.ids,
            markers=self.markers,
            broker_id=BROKER,
            clock=lambda: self.now,
        )

    def _new_shard(self, partition: int, coordinator_epoch: int) -> FakeTxnShard:
        shard = FakeTxnShard(partition, coordinator_epoch)
        self.shards.append(shard)
        return shard

    def lead(self, partition: int = P, epoch: int = 5) -> None:
        self.log.led[partition] = epoch
        self.topic.leaders[partition] = BROKER
        self.coordinator.sync()

    async def loaded(self, partition: int = P) -> FakeTxnShard:
        """The partition's newest shard, once loaded."""

        def newest() -> FakeTxnShard | None:
            return next((s for s in reversed(self.shards) if s.partition == partition), None)

        await until(lambda: (s := newest()) is not None and s.loaded_at is not None)
        shard = newest()
        assert shard is not None
        return shard

    def states(self, partition: int = P) -> list[str]:
        """The state in each record written to the partition, in order."""
        return [
            r.value.decode().split('"state": "')[1].split('"')[0]
            for r in self.log.records.get(partition, [])
            if isinstance(r, StoredRecord) and r.value is not None
        ]

    async def begin(self, tid: str = TID) -> InitProducerIdResult:
        ids = await self.coordinator.init_producer_id(tid, 60_000)
        unknown = await self.coordinator.add_partitions(
            tid, ids.producer_id, ids.producer_epoch, [("events", 0), ("events", 2)]
        )
        assert unknown == []
        return ids


def run(test: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        h = Harness()
        try:
            await asyncio.wait_for(test(h), 10)
        finally:
            await h.coordinator.close()

    asyncio.run(main())


def test_a_shard_is_loaded_in_the_partitions_leader_epoch_and_serves_after_loading() -> None:
    async def body(h: Harness) -> None:
        h.log.gate.clear()
        h.lead(epoch=7)
        with pytest.raises(CoordinatorLoadInProgressError):
            await h.coordinator.init_producer_id(TID, 60_000)
        h.log.gate.set()
        shard = await h.loaded()
        assert shard.coordinator_epoch == 7
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        assert (ids.producer_id, ids.producer_epoch) == (1000, 0)
        assert h.log.appends == [(P, 7, 1)]

    run(body)


def test_routing_errors_before_the_topic_exists_and_on_another_broker() -> None:
    async def body(h: Harness) -> None:
        h.topic.partitions = None
        with pytest.raises(CoordinatorNotAvailableError, match="__transaction_state"):
            await h.coordinator.init_producer_id(TID, 60_000)
        h.topic.partitions = 4
        h.topic.leaders[P] = 2
        with pytest.raises(NotCoordinatorError, match="leader is broker 2"):
            await h.coordinator.describe(TID)
        assert h.ids.calls == 0  # no producer id is taken for a call that cannot run

    run(body)


def test_a_fresh_producer_id_not_used_goes_to_the_next_call() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        first = await h.coordinator.init_producer_id(TID, 60_000)
        again = await h.coordinator.init_producer_id(TID, 60_000)  # a bump: no new id used
        other = await h.coordinator.init_producer_id("t5", 60_000)  # same partition as t1
        assert (first.producer_id, first.producer_epoch) == (1000, 0)
        assert (again.producer_id, again.producer_epoch) == (1000, 1)
        assert other.producer_id == 1001  # the id fetched for the bump and not used
        assert h.ids.calls == 2

    run(body)


def test_add_partitions_refuses_unknown_partitions_and_adds_nothing() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        appended = len(h.log.appends)
        unknown = await h.coordinator.add_partitions(
            TID, ids.producer_id, ids.producer_epoch, [("events", 0), ("events", 3), ("gone", 0)]
        )
        assert unknown == [("events", 3), ("gone", 0)]
        assert len(h.log.appends) == appended and shard.txns[TID].state == "Empty"
        assert (
            await h.coordinator.add_partitions(
                TID, ids.producer_id, ids.producer_epoch, [("events", 2)]
            )
            == []
        )
        assert shard.txns[TID].partitions == (("events", 2),)

    run(body)


def test_add_offsets_needs_the_offsets_topic_and_adds_the_groups_partition() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        with pytest.raises(CoordinatorNotAvailableError, match="__consumer_offsets"):
            await h.coordinator.add_offsets(TID, ids.producer_id, ids.producer_epoch, "g")
        assert h.offsets.ensured == 1  # its creation was asked for
        h.offsets.partitions = 50
        await h.coordinator.add_offsets(TID, ids.producer_id, ids.producer_epoch, "g")
        assert shard.txns[TID].partitions == (("__consumer_offsets", partition_for("g", 50)),)

    run(body)


def test_end_transaction_answers_once_decided_then_markers_complete_it() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        ids = await h.begin()
        h.markers.gate.clear()
        ended = await h.coordinator.end_transaction(
            TID, ids.producer_id, ids.producer_epoch, committed=True
        )
        assert ended.producer_epoch == ids.producer_epoch + 1
        assert shard.txns[TID].state == "PrepareCommit"  # answered before the markers
        await until(lambda: len(h.markers.jobs) == 1, what="marker job started")
        job = h.markers.jobs[0]
        assert job.committed and job.coordinator_epoch == 5
        assert job.partitions == {("events", 0), ("events", 2)}
        h.markers.gate.set()
        await until(lambda: shard.txns[TID].state == "CompleteCommit", what="completed")
        assert h.states()[-2:] == ["PrepareCommit", "CompleteCommit"]
        with pytest.raises(ProducerFencedError):  # the old epoch is done
            await h.coordinator.add_partitions(
                TID, ids.producer_id, ids.producer_epoch, [("events", 0)]
            )

    run(body)


def test_init_producer_id_over_an_open_transaction_writes_the_abort_then_fails() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        ids = await h.begin()
        h.markers.gate.clear()
        with pytest.raises(ConcurrentTransactionsError):
            await h.coordinator.init_producer_id(TID, 60_000)
        assert h.states()[-1] == "PrepareAbort"  # written before the error was answered
        await until(lambda: len(h.markers.jobs) == 1, what="abort markers started")
        assert not h.markers.jobs[0].committed
        assert h.markers.jobs[0].producer_epoch == ids.producer_epoch + 1
        h.markers.gate.set()
        await until(lambda: shard.txns[TID].state == "CompleteAbort", what="aborted")
        again = await h.coordinator.init_producer_id(TID, 60_000)  # the client's retry
        assert again.producer_epoch == ids.producer_epoch + 2

    run(body)


def test_a_superseded_marker_job_does_not_complete_the_transaction() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        ids = await h.begin()
        h.markers.outcome = MarkerOutcome.SUPERSEDED
        await h.coordinator.end_transaction(TID, ids.producer_id, ids.producer_epoch, False)
        await until(lambda: len(h.markers.finished) == 1, what="marker job finished")
        await h.coordinator.describe(TID)  # after any write in progress
        assert shard.txns[TID].state == "PrepareAbort"

    run(body)


def test_marker_jobs_of_a_decided_transaction_resume_after_a_reload() -> None:
    async def body(h: Harness) -> None:
        h.lead(epoch=5)
        await h.loaded()
        ids = await h.begin()
        h.markers.gate.clear()
        await h.coordinator.end_transaction(TID, ids.producer_id, ids.producer_epoch, True)
        await until(lambda: len(h.markers.jobs) == 1, what="marker job started")
        # Leadership moves away: the job stops with the shard.
        h.log.led.clear()
        h.topic.leaders[P] = 2
        h.coordinator.sync()
        await until(lambda: h.markers.cancelled == 1, what="marker job cancelled")
        # ... and comes back (a new leader epoch): the Prepare record is replayed and its
        # markers are sent again, with the new coordinator epoch.
        h.markers.gate.set()
        h.lead(epoch=6)
        shard = await h.loaded()
        assert shard is not h.shards[0] and shard.coordinator_epoch == 6
        await until(lambda: shard.txns[TID].state == "CompleteCommit", what="completed")
        assert len(h.markers.jobs) == 2 and h.markers.jobs[1].coordinator_epoch == 6
        assert h.log.appends[-1][:2] == (P, 6)

    run(body)


def test_unloading_stops_marker_jobs_and_close_waits_for_them() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        ids = await h.begin()
        h.markers.gate.clear()
        await h.coordinator.end_transaction(TID, ids.producer_id, ids.producer_epoch, True)
        await until(lambda: len(h.markers.jobs) == 1, what="marker job started")
        await h.coordinator.close()
        assert h.markers.cancelled == 1 and h.markers.finished == []

    run(body)


def test_a_tick_aborts_a_timed_out_transaction_and_sends_its_markers() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        await h.begin()
        await h.coordinator.tick_once()
        assert shard.txns[TID].state == "Ongoing" and h.markers.jobs == []
        h.now += 60_000
        await h.coordinator.tick_once()
        await until(lambda: shard.txns[TID].state == "CompleteAbort", what="aborted")
        assert len(h.markers.jobs) == 1 and not h.markers.jobs[0].committed
        assert h.states()[-2:] == ["PrepareAbort", "CompleteAbort"]

    run(body)


def test_describe_and_list_read_the_loaded_shards() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        await h.begin()
        described = await h.coordinator.describe(TID)
        assert (described.state, described.producer_id) == ("Ongoing", 1000)
        listed = await h.coordinator.list_transactions(tpb.ListTransactionsRequest())
        assert [(t.transactional_id, t.state) for t in listed] == [(TID, "Ongoing")]

    run(body)


def test_the_real_shard_commits_through_the_runtime_and_reloads_from_its_records() -> None:
    async def body(h: Harness) -> None:
        h.coordinator._new_shard = lambda p, epoch: TransactionShard(p, epoch, TxnConfig())
        h.lead(epoch=3)
        await until(lambda: bool(h.coordinator._slots) and h.coordinator._slots[P].loaded)
        ids = await h.coordinator.init_producer_id(TID, 60_000)
        assert (
            await h.coordinator.add_partitions(
                TID, ids.producer_id, ids.producer_epoch, [("events", 1)]
            )
            == []
        )
        ended = await h.coordinator.end_transaction(TID, ids.producer_id, ids.producer_epoch, True)
        assert (ended.producer_id, ended.producer_epoch) == (
            ids.producer_id,
            ids.producer_epoch + 1,
        )
        await until(lambda: len(h.markers.finished) == 1, what="markers sent")
        job = h.markers.finished[0]
        assert (job.producer_epoch, job.coordinator_epoch, job.committed) == (
            ended.producer_epoch,
            3,
            True,
        )
        assert job.partitions == {("events", 1)}

        async def complete() -> bool | None:
            return (await h.coordinator.describe(TID)).state == "CompleteCommit" or None

        await eventually(complete, timeout_s=5, what="CompleteCommit")
        h.log.led[P] = 4  # a new leader epoch: reloaded from the records written so far
        h.coordinator.sync()
        await until(
            lambda: h.coordinator._slots[P].loaded and h.coordinator._slots[P].leader_epoch == 4
        )
        described = await h.coordinator.describe(TID)
        assert (described.state, described.producer_epoch) == (
            "CompleteCommit",
            ended.producer_epoch,
        )

    run(body)
