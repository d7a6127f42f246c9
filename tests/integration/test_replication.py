"""Replication with real brokers: failover under acks=all, ISR shrink/expand, min.insync.replicas,
divergent tails truncated. Acknowledged records are checked on every replica's disk."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually
from tests.integration.support.broker_rpc import LATEST, fetch, list_offset, produce
from tests.integration.support.brokers import (
    log_events,
    start_broker_cluster,
    stop_broker_cluster,
    wait_unfenced,
)
from tests.integration.support.quorum import client_for
from tests.integration.support.replication import (
    TOPIC,
    AckedWrites,
    cpb_record,
    create,
    leader_sees_isr,
    partition_state,
    produce_when_leading,
    records_on_disk,
    replicas_agree,
    wait_isr,
    wait_leader,
)

pytestmark = pytest.mark.integration

LAG_MS = 2000


@pytest.fixture
def rcluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path / "c", broker_settings={"replica_lag_time_max_ms": LAG_MS}
    )
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def test_kill_9_leader_under_acks_all_loses_nothing(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster)
        writes = AckedWrites(rcluster, "v")
        writes.start()
        acked = writes.acked
        await eventually(lambda: writes.at_least(20), what="acknowledged writes before the kill")
        old = (await partition_state(rcluster)).leader
        rcluster.kill(old)
        before_kill = len(acked)
        await wait_leader(rcluster, exclude=old)
        await eventually(
            lambda: writes.at_least(before_kill + 20), what="acknowledged writes after failover"
        )
        await writes.stop()
        rcluster.start(old)
        final = await wait_isr(rcluster, 3)
        # Every member of the ISR holds every acknowledged record exactly once, at its offset.
        await eventually(
            lambda: replicas_agree(rcluster, list(final.isr)), what="replicas converging"
        )
        for broker in final.isr:
            on_disk = records_on_disk(rcluster, broker)
            values = [v for _o, v in on_disk]
            assert [o for o, _v in on_disk] == list(range(len(on_disk))), (
                "offsets are dense and ordered"
            )
            for value, offset in acked.items():
                assert values.count(value) == 1, (
                    f"{value!r} on broker {broker}: {values.count(value)} copies"
                )
                assert on_disk[offset] == (offset, value)
        result = await fetch(
            rcluster.brokers[final.leader].address,
            TOPIC,
            0,
            0,
            decode_records=True,
            partition_max_bytes=1 << 20,
        )
        assert result.high_watermark == len(records_on_disk(rcluster, final.leader))

    asyncio.run(main())


def test_paused_follower_leaves_and_rejoins_the_isr(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=2)
        p = await partition_state(rcluster)
        # An acks=all write completes only once every ISR member has fetched it, so both
        # followers are known to be replicating before one is paused (a follower that never
        # fetched would be dropped from the ISR too, on a loaded machine).
        warm = await produce(
            rcluster.brokers[p.leader].address, TOPIC, 0, records=[cpb_record(b"w")], acks=-1
        )
        assert warm.error_code == cpb.NONE, warm.error_message
        follower = next(b for b in p.isr if b != p.leader)
        rcluster.pause(follower)
        try:
            shrunk = await wait_isr(rcluster, 2, timeout_s=LAG_MS / 1000 * 6)
            assert follower not in shrunk.isr, f"expected {follower} to leave {list(shrunk.isr)}"
            for i in range(5):  # 2 of 3 in sync still satisfies min.insync.replicas=2
                r = await produce(
                    rcluster.brokers[shrunk.leader].address,
                    TOPIC,
                    0,
                    records=[cpb_record(b"x%d" % i)],
                    acks=-1,
                )
                assert r.error_code == cpb.NONE, r.error_message
        finally:
            rcluster.resume(follower)
        grown = await wait_isr(rcluster, 3)
        assert follower in grown.isr
        await eventually(
            lambda: replicas_agree(rcluster, list(grown.isr)), what="the follower catching up"
        )

    asyncio.run(main())


def test_two_of_three_down_means_not_enough_replicas(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=2)
        p = await partition_state(rcluster)
        leader = rcluster.brokers[p.leader].address
        r = await produce(leader, TOPIC, 0, records=[cpb_record(b"kept")], acks=-1)
        assert r.error_code == cpb.NONE
        for follower in [b for b in p.replicas if b != p.leader]:
            rcluster.kill(follower)
        await wait_isr(rcluster, 1, timeout_s=LAG_MS / 1000 * 6)
        await eventually(
            lambda: leader_sees_isr(leader, 1), what="the leader applying the ISR change"
        )
        before = (await list_offset(leader, TOPIC, 0, LATEST)).offset
        refused = await produce(leader, TOPIC, 0, records=[cpb_record(b"refused")], acks=-1)
        assert refused.error_code == cpb.NOT_ENOUGH_REPLICAS, cpb.ErrorCode.Name(refused.error_code)
        assert "min.insync.replicas" in refused.error_message
        assert (await list_offset(leader, TOPIC, 0, LATEST)).offset == before, "nothing was written"
        assert all(v != b"refused" for _o, v in records_on_disk(rcluster, p.leader))
        assert (0, b"kept") in records_on_disk(rcluster, p.leader)

    asyncio.run(main())


def test_unclean_election_disabled_keeps_partition_offline_enabled_recovers(
    rcluster: LocalCluster,
) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=1, rf=2)
        p = await partition_state(rcluster)
        leader, follower = p.leader, next(b for b in p.replicas if b != p.leader)
        r = await produce(
            rcluster.brokers[leader].address, TOPIC, 0, records=[cpb_record(b"both")], acks=-1
        )
        assert r.error_code == cpb.NONE
        rcluster.kill(follower)
        await wait_isr(rcluster, 1, timeout_s=LAG_MS / 1000 * 6)  # fenced: out of the ISR
        r = await produce(
            rcluster.brokers[leader].address,
            TOPIC,
            0,
            records=[cpb_record(b"only-on-leader")],
            acks=-1,
        )
        assert r.error_code == cpb.NONE  # min.insync.replicas=1: acknowledged by the leader alone
        rcluster.kill(leader)
        rcluster.start(follower)
        await wait_unfenced(rcluster, [follower])

        async def offline() -> pb.PartitionDescription | None:
            s = await partition_state(rcluster)
            return s if s.leader == -1 else None

        # Unclean election disabled (the default): the out-of-sync replica is active, yet the
        # partition stays offline; the controller's answer to a clean election confirms it.
        state = await eventually(offline, what="the partition offline")
        assert list(state.isr) == [leader], "the ISR keeps its last member"
        async with client_for(rcluster) as client:
            (preferred,) = await client.elect_leaders(pb.ELECTION_TYPE_PREFERRED, [(TOPIC, 0)])
            assert preferred.partitions[0].error_code != cpb.NONE
            assert (await partition_state(rcluster)).leader == -1
            (unclean,) = await client.elect_leaders(pb.ELECTION_TYPE_UNCLEAN, [(TOPIC, 0)])
        result = unclean.partitions[0]
        assert result.error_code == cpb.NONE and result.unclean and result.leader == follower
        new = await wait_leader(rcluster)
        assert new.leader == follower and list(new.isr) == [follower]
        await eventually(
            lambda: produce_when_leading(rcluster.brokers[follower].address, b"after"),
            what="the new leader accepting writes",
        )
        values = [v for _o, v in records_on_disk(rcluster, follower)]
        assert values == [b"both", b"after"], "the unclean election lost the leader-only record"
        # The old leader comes back, truncates below its high watermark and follows.
        rcluster.start(leader)
        await wait_isr(rcluster, 2)
        await eventually(
            lambda: replicas_agree(rcluster, [leader, follower]), what="the old leader converging"
        )
        truncations = log_events(rcluster, leader, "truncating_below_high_watermark") + log_events(
            rcluster, leader, "follower_truncated"
        )
        assert truncations, "the old leader did not truncate its divergent record"

    asyncio.run(main())


def test_reassignment_under_load_loses_nothing(rcluster: LocalCluster) -> None:
    async def main() -> None:
        await create(rcluster, min_isr=1, rf=1)
        p = await partition_state(rcluster)
        writes = AckedWrites(rcluster, "m")
        writes.start()
        acked = writes.acked
        await eventually(lambda: writes.at_least(20), what="writes before the reassignment")
        target = [b for b in rcluster.brokers if b != p.leader] + [p.leader]
        async with client_for(rcluster) as client:
            (res,) = await client.alter_partition_reassignments({(TOPIC, 0): target[:2]})
            assert res.partitions[0].error_code == cpb.NONE, res.partitions[0].error_message

            async def done() -> pb.PartitionDescription | None:
                if await client.list_partition_reassignments([TOPIC]):
                    return None
                s = await partition_state(rcluster)
                return s if sorted(s.replicas) == sorted(target[:2]) and s.leader >= 0 else None

            moved = await eventually(done, timeout_s=60, what="the reassignment completing")
        before = len(acked)
        await eventually(lambda: writes.at_least(before + 10), what="writes after the reassignment")
        await writes.stop()
        final = await wait_isr(rcluster, 2)
        assert p.leader not in moved.replicas
        await eventually(
            lambda: replicas_agree(rcluster, list(final.isr)), what="new replicas converging"
        )
        for broker in final.isr:
            on_disk = records_on_disk(rcluster, broker)
            for value, offset in acked.items():
                assert on_disk[offset] == (offset, value), f"{value!r} missing on broker {broker}"

    asyncio.run(main())


def test_repeated_leader_kills_and_restarts_rejoin_the_isr(rcluster: LocalCluster) -> None:
    """Each restarted leader replays the metadata log from the start, passing through stale
    leadership records of itself; it must still follow the current leader and rejoin the ISR."""

    async def write(broker: int, value: bytes) -> None:
        address = rcluster.brokers[broker].address
        await eventually(lambda: produce_when_leading(address, value), what=f"writing {value!r}")

    async def main() -> None:
        await create(rcluster, min_isr=2)
        for round_ in range(3):
            p = await partition_state(rcluster)
            await write(p.leader, b"r%d" % round_)
            rcluster.kill(p.leader)
            new = await wait_leader(rcluster, exclude=p.leader)
            await write(new.leader, b"s%d" % round_)
            rcluster.start(p.leader)
            final = await wait_isr(rcluster, 3)
        await eventually(
            lambda: replicas_agree(rcluster, list(final.isr)), what="replicas converging"
        )
        values = [v for _o, v in records_on_disk(rcluster, final.leader)]
        for round_ in range(3):
            assert values.count(b"r%d" % round_) == 1 and values.count(b"s%d" % round_) == 1

    asyncio.run(main())
