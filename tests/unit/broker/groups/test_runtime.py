"""The coordinator runtime's mechanics with a fake shard and an in-memory log: loading, routing
errors, replicated writes, reload after a failed write, ticks and pushes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.placement import partition_for
from raftka.broker.groups.runtime import GroupCoordinator
from raftka.common.errors import CoordinatorLoadInProgressError, NotEnoughReplicasError
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.v1 import groups_pb2 as gpb
from tests.conditions import until
from tests.unit.broker.groups.fakes import FakeLog, FakeMetadata, FakeShard

BROKER = 1
GROUP = "a"  # hashes to 97: partition 1 of 4
P = partition_for(GROUP, 4)
NOW = 1_700_000_000_000


class Harness:
    def __init__(self) -> None:
        self.log = FakeLog()
        self.meta = FakeMetadata()
        self.shards: list[FakeShard] = []
        self.coordinator = GroupCoordinator(
            offsets_log=self.log,
            metadata=self.meta,
            shard_factory=self._new_shard,
            broker_id=BROKER,
            clock=lambda: NOW,
        )

    def _new_shard(self, partition: int) -> FakeShard:
        shard = FakeShard(partition)
        self.shards.append(shard)
        return shard

    def lead(self, partition: int = P, epoch: int = 5) -> None:
        self.log.led[partition] = epoch
        self.meta.leaders[partition] = BROKER
        self.coordinator.sync()

    async def loaded(self, partition: int = P) -> FakeShard:
        await until(
            lambda: any(s.partition == partition and s.loaded_at for s in self.shards),
            what="shard loaded",
        )
        return self.shards[-1]

    async def commit(self, offset: int, group: str = GROUP) -> gpb.OffsetCommitResponse:
        request = gpb.OffsetCommitRequest(
            group_id=group,
            member_epoch=-1,
            topics=[
                gpb.OffsetCommitTopic(
                    name="events", partitions=[gpb.OffsetCommitPartition(offset=offset)]
                )
            ],
        )
        return await self.coordinator.write(
            group, lambda shard, now: shard.commit_offsets(request, now_ms=now, topics={})
        )

    async def fetch(self, group: str = GROUP) -> list[int]:
        response = await self.coordinator.read(
            group, lambda shard: shard.fetch_offsets(gpb.OffsetFetchRequest(group_id=group))
        )
        return [p.offset for t in response.topics for p in t.partitions]


def run(test: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        h = Harness()
        try:
            await test(h)
        finally:
            await h.coordinator.close()

    asyncio.run(asyncio.wait_for(main(), 10))


def test_a_loading_shard_answers_load_in_progress_then_serves_what_it_replayed() -> None:
    async def body(h: Harness) -> None:
        h.log.records[P] = [StoredRecord(f"o/{GROUP}/events/0".encode(), b"41")]
        h.log.gate.clear()
        h.lead()
        with pytest.raises(CoordinatorLoadInProgressError, match="loading"):
            await h.fetch()
        with pytest.raises(CoordinatorLoadInProgressError):
            await h.commit(7)
        assert h.log.appends == []  # nothing written while loading
        h.log.gate.set()
        shard = await h.loaded()
        assert shard.replayed == 1 and shard.loaded_at == NOW
        assert await h.fetch() == [41]

    run(body)


def test_a_commit_is_appended_before_it_is_answered() -> None:
    async def body(h: Harness) -> None:
        h.lead(epoch=7)
        await h.loaded()
        response = await h.commit(12)
        assert [p.partition for t in response.topics for p in t.partitions] == [0]
        assert h.log.appends == [(P, 7, 1)]
        assert await h.fetch() == [12]

    run(body)


def test_routing_errors_name_the_reason() -> None:
    async def body(h: Harness) -> None:
        # The partition has no leader: COORDINATOR_NOT_AVAILABLE.
        with pytest.raises(CoordinatorNotAvailableError, match="no leader"):
            await h.fetch()
        # Another broker leads it: NOT_COORDINATOR.
        h.meta.leaders[P] = 2
        with pytest.raises(NotCoordinatorError, match="its leader is broker 2"):
            await h.fetch()
        # The topic does not exist yet: COORDINATOR_NOT_AVAILABLE.
        h.meta.partitions = None
        with pytest.raises(CoordinatorNotAvailableError, match="does not exist"):
            await h.fetch()

    run(body)


def test_a_partition_led_here_but_not_yet_synced_is_loading_not_elsewhere() -> None:
    async def body(h: Harness) -> None:
        h.log.led[P] = 3
        h.meta.leaders[P] = BROKER
        with pytest.raises(CoordinatorLoadInProgressError, match="about to load"):
            await h.fetch()

    run(body)


def test_losing_leadership_unloads_and_answers_not_coordinator() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        await h.commit(3)
        queue = h.coordinator.subscribe(GROUP, "m1")
        h.log.led.clear()
        h.meta.leaders[P] = 2
        h.coordinator.sync()
        with pytest.raises(NotCoordinatorError):
            await h.fetch()
        ended = queue.get_nowait()  # the member's stream is told to find the coordinator
        assert isinstance(ended, NotCoordinatorError)

    run(body)


def test_a_new_leader_epoch_reloads_the_shard() -> None:
    async def body(h: Harness) -> None:
        h.lead(epoch=1)
        first = await h.loaded()
        await h.commit(5)
        h.lead(epoch=2)
        await until(lambda: len(h.shards) == 2 and h.shards[1].loaded_at is not None)
        assert h.shards[1] is not first
        assert h.shards[1].replayed == 1  # the commit, read back from the log
        assert await h.fetch() == [5]

    run(body)


def test_a_failed_write_drops_the_shard_and_reloads_it_from_the_log() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        first = await h.loaded()
        await h.commit(10)
        h.log.gate.clear()  # hold the reload, to see its state
        h.log.fail_next = NotEnoughReplicasError("ISR below min.insync.replicas")
        with pytest.raises(CoordinatorLoadInProgressError, match="reloading"):
            await h.commit(20)
        assert first.offsets[(GROUP, "events", 0)] == 20  # the dropped shard had applied it
        with pytest.raises(CoordinatorLoadInProgressError):
            await h.fetch()
        h.log.gate.set()
        await until(lambda: len(h.shards) == 2 and h.shards[1].loaded_at is not None)
        assert await h.fetch() == [10]  # the failed commit is not there
        await h.commit(30)
        assert await h.fetch() == [30]

    run(body)


def test_a_failed_write_after_leadership_moved_answers_not_coordinator() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        h.log.led.clear()  # leadership moved; the runtime has not synced yet
        h.meta.leaders[P] = 2
        h.log.fail_next = NotEnoughReplicasError("not the leader any more")
        with pytest.raises(NotCoordinatorError, match="no longer leads"):
            await h.commit(1)

    run(body)


def test_a_join_pushes_to_the_other_members_streams_only() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()

        async def join() -> gpb.ConsumerGroupHeartbeatResponse:
            request = gpb.ConsumerGroupHeartbeatRequest(group_id=GROUP, member_epoch=0)
            return await h.coordinator.write(
                GROUP,
                lambda shard, now: shard.heartbeat(
                    request, now_ms=now, topics={}, client_id="c", client_host="h"
                ),
            )

        first = await join()
        queue = h.coordinator.subscribe(GROUP, first.member_id)
        second = await join()
        pushed = queue.get_nowait()
        assert isinstance(pushed, gpb.ConsumerGroupHeartbeatResponse)
        assert pushed.member_id == first.member_id and pushed.has_assignment
        assert second.member_id != first.member_id
        assert queue.empty()
        assert h.shards[-1].untold == []
        h.coordinator.unsubscribe(GROUP, first.member_id, queue)
        await join()
        assert queue.empty()  # unsubscribed: the push is dropped
        # ... and the shard hears that those members were not told (their next answers tell).
        assert sorted(h.shards[-1].untold) == sorted(
            [(GROUP, first.member_id), (GROUP, second.member_id)]
        )

    run(body)


def test_ticks_write_what_the_shard_produces() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        shard = await h.loaded()
        shard.tick_records = [StoredRecord(b"m/g/x", None)]
        await h.coordinator.tick_once()
        assert shard.ticks == 1
        assert h.log.appends == [(P, 5, 1)]
        await h.coordinator.tick_once()  # nothing to write: nothing appended
        assert shard.ticks == 2 and len(h.log.appends) == 1

    run(body)


def test_run_ticks_at_the_shards_deadline() -> None:
    async def body(h: Harness) -> None:
        h.coordinator._tick_interval_ms = 60_000  # only the deadline can explain a tick
        h.lead()
        shard = await h.loaded()
        shard.deadline = NOW  # due now
        task = asyncio.create_task(h.coordinator.run())
        try:
            await until(lambda: shard.ticks >= 2, what="ticks at the deadline")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run(body)


def test_concurrent_writes_to_a_shard_are_appended_as_one_batch() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        groups = [GROUP] * 5
        responses = await asyncio.gather(*(h.commit(i, group=g) for i, g in enumerate(groups)))
        assert len(responses) == 5
        assert h.log.appends == [(P, 5, 5)]  # one batch, every commit's record in call order
        assert [int(r.value or b"") for r in h.log.records[P] if isinstance(r, StoredRecord)] == [
            0,
            1,
            2,
            3,
            4,
        ]
        assert await h.fetch() == [4]

    run(body)


def test_a_failed_combined_write_fails_every_call_in_it() -> None:
    async def body(h: Harness) -> None:
        h.lead()
        await h.loaded()
        h.log.fail_next = NotEnoughReplicasError("ISR below min.insync.replicas")
        results = await asyncio.gather(*(h.commit(i) for i in range(3)), return_exceptions=True)
        assert all(isinstance(r, CoordinatorLoadInProgressError) for r in results), results
        await until(lambda: len(h.shards) == 2 and h.shards[1].loaded_at is not None)
        assert await h.fetch() == []  # none of them was written

    run(body)


def test_a_partition_the_image_gives_this_broker_is_loading_until_the_replica_leads() -> None:
    async def body(h: Harness) -> None:
        h.meta.leaders[P] = BROKER  # the image says so; the replica manager has not caught up
        with pytest.raises(CoordinatorLoadInProgressError):
            await h.fetch()
        h.lead()
        await h.loaded()
        assert await h.fetch() == []

    run(body)
