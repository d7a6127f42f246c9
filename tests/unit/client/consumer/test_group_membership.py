"""A subscribed consumer against a fake group coordinator (real gRPC, in-process): joining,
assignments, revocation order, fencing, coordinator moves, auto-commit, leaving."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.consumer.errors import CommitFailedError
from raftka.client.types import TopicPartition
from raftka.common import group_errors
from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import until
from tests.unit.client.fake_groups import FakeGroupCluster, started
from tests.unit.client.support import FAST, poll_n

T0, T1 = TopicPartition("t", 0), TopicPartition("t", 1)


def group_consumer(cluster: FakeGroupCluster, **settings: Any) -> AsyncConsumer:
    return AsyncConsumer(
        bootstrap_servers=cluster.bootstrap,
        connections=cluster,
        **{**FAST, "group_id": "g", "auto_offset_reset": "earliest", **settings},
    )


def run(test: Callable[[FakeGroupCluster], Awaitable[None]]) -> None:
    async def main() -> None:
        cluster = await started()
        cluster.create("t", 2)
        for p in range(2):
            cluster.append("t", p, [f"v{p}-{i}".encode() for i in range(5)])
        try:
            await test(cluster)
        finally:
            await cluster.stop()

    asyncio.run(main())


async def poll_until(
    consumer: AsyncConsumer, condition: Callable[[], bool], what: str, timeout_s: float = 20.0
) -> None:
    """Poll (a member must keep polling) until ``condition()`` holds; fail after
    ``timeout_s`` (generous: a loaded CI machine is slow, a healthy run takes well under 1 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await consumer.poll(timeout_ms=10)
        if condition():
            return
    raise AssertionError(f"{what} did not happen within {timeout_s:g}s")


@pytest.mark.parametrize("mode", ["stream", "unary"])
def test_join_then_read_from_committed_offsets_and_reset_policy(mode: str) -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.offsets[T0] = 3  # committed; T1 has none: earliest
        assigned: list[set[TopicPartition]] = []
        async with group_consumer(cluster, group_heartbeat_mode=mode) as consumer:
            consumer.subscribe(["t"], on_assign=assigned.append)
            records = await poll_n(consumer, 2 + 5)
            by = {(r.partition, r.offset) for r in records}
            assert by == {(0, 3), (0, 4)} | {(1, i) for i in range(5)}
            assert assigned == [{T0, T1}]
            assert consumer.assignment() == {T0, T1}
            join = cluster.groups.heartbeats()[0]
            assert (join.member_epoch, list(join.subscribed_topic_names)) == (0, ["t"])
            assert join.session_timeout_ms == 45000 and join.rebalance_timeout_ms == 300000
            assert not join.owned_partitions_set
            member = cluster.groups.member()
            await until(lambda: member.owned == {T0, T1}, what="owned reported")
            fetch = next(e.request for e in cluster.groups.events if e.kind == "fetch")
            assert (fetch.member_id, fetch.member_epoch) == (member.member_id, member.epoch)

    run(test)


def test_revocation_commits_processed_positions_then_callback_then_reports_owned() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        order: list[str] = []

        async def on_revoke(partitions: set[TopicPartition]) -> None:
            # The coordinator has not been told yet: it still sees t-0 owned.
            owned = cluster.groups.member().owned
            order.append(
                f"revoke {sorted(partitions)} commits={len(cluster.groups.commits())} "
                f"reported={sorted(owned)}"
            )

        async with group_consumer(cluster, auto_commit_interval_ms=3600_000) as consumer:
            consumer.subscribe(["t"], on_revoke=on_revoke)
            await poll_n(consumer, 10)
            await consumer.poll(timeout_ms=0)  # the records above are processed now
            member = cluster.groups.member()
            heartbeats_before = len(cluster.groups.heartbeats())
            cluster.groups.assign(member.member_id, {T1})  # pushed on the stream
            await poll_until(consumer, lambda: consumer.assignment() == {T1}, "revocation")
            (commit,) = cluster.groups.commits()
            assert [
                (t.name, [(p.partition, p.offset) for p in t.partitions]) for t in commit.topics
            ] == [("t", [(0, 5)])]
            assert order == [f"revoke {[T0]} commits=1 reported={[T0, T1]}"]
            await until(lambda: member.owned == {T1}, what="owned without t-0 reported")
            # It came at once, not a heartbeat interval (5 s) later.
            later = cluster.groups.heartbeats()[heartbeats_before:]
            assert any(
                h.owned_partitions_set
                and [p for t in h.owned_partitions for p in t.partitions] == [1]
                for h in later
            )

    run(test)


def test_pushed_assignment_applies_without_waiting_for_the_heartbeat_interval() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.heartbeat_interval_ms = 60_000
        async with group_consumer(cluster) as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            member = cluster.groups.member()
            await until(lambda: member.owned == {T0, T1}, what="owned reported")
            sent = len(cluster.groups.heartbeats())
            cluster.groups.assign(member.member_id, set())
            await poll_until(consumer, lambda: consumer.assignment() == set(), "push applied")
            cluster.groups.assign(member.member_id, {T0})
            await poll_until(consumer, lambda: consumer.assignment() == {T0}, "push applied")
            # Only the two owned-partition reports went out: no interval heartbeat was needed.
            await until(lambda: member.owned == {T0}, what="owned reported")
            assert len(cluster.groups.heartbeats()) - sent == 2

    run(test)


def test_fenced_member_loses_partitions_without_commit_and_rejoins_with_epoch_0() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.heartbeat_interval_ms = 50
        lost: list[set[TopicPartition]] = []
        revoked: list[set[TopicPartition]] = []
        async with group_consumer(cluster, auto_commit_interval_ms=3600_000) as consumer:
            consumer.subscribe(["t"], on_lost=lost.append, on_revoke=revoked.append)
            await poll_n(consumer, 10)
            cluster.groups.answer_next.append(ErrorCode.FENCED_MEMBER_EPOCH)
            await poll_until(consumer, lambda: bool(lost), "partitions lost")
            assert lost == [{T0, T1}] and revoked == []
            assert cluster.groups.commits() == []
            await poll_until(consumer, lambda: consumer.assignment() == {T0, T1}, "rejoined")
            joins = [h for h in cluster.groups.heartbeats() if h.member_epoch == 0]
            # KIP-1082: the id the client generated is kept, so the rejoin is the same member
            assert (
                len(joins) == 2 and joins[0].member_id and joins[1].member_id == joins[0].member_id
            )

    run(test)


def test_not_coordinator_makes_it_find_the_coordinator_again() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.heartbeat_interval_ms = 50
        async with group_consumer(cluster) as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            cluster.groups.coordinator = 2  # moved: node 1 answers NOT_COORDINATOR
            await poll_until(
                consumer,
                lambda: any(e.node == 2 for e in cluster.groups.events),
                "heartbeats at the new coordinator",
            )
            assert consumer.assignment() == {T0, T1}  # no fencing: the membership goes on
            assert consumer._coordinator is not None
            assert consumer._coordinator.address == cluster.addresses[2]

    run(test)


def test_coordinator_load_in_progress_is_retried_at_the_same_broker() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        from raftka.common.errors import CoordinatorLoadInProgressError

        cluster.groups.fail_next += [CoordinatorLoadInProgressError("loading")] * 2
        async with group_consumer(cluster, group_heartbeat_mode="unary") as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            assert {e.node for e in cluster.groups.events} == {1}

    run(test)


def test_auto_commit_at_the_interval() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        async with group_consumer(cluster, auto_commit_interval_ms=20) as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            await poll_until(
                consumer,
                lambda: cluster.groups.offsets == {T0: 5, T1: 5},
                "auto-commit of the processed positions",
            )
            commits = len(cluster.groups.commits())
            for _ in range(30):  # nothing new processed: nothing more committed
                await consumer.poll(timeout_ms=5)
            assert len(cluster.groups.commits()) == commits

    run(test)


@pytest.mark.parametrize(("instance", "leave_epoch"), [(None, -1), ("host-1", -2)])
def test_close_commits_then_leaves(instance: str | None, leave_epoch: int) -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        revoked: list[set[TopicPartition]] = []
        consumer = group_consumer(
            cluster, auto_commit_interval_ms=3600_000, group_instance_id=instance
        )
        consumer.subscribe(["t"], on_revoke=revoked.append)
        await poll_n(consumer, 10)
        member_id = cluster.groups.member().member_id
        await consumer.close()
        assert cluster.groups.offsets == {T0: 5, T1: 5}
        assert revoked == [{T0, T1}]
        last = cluster.groups.heartbeats()[-1]
        assert (last.member_id, last.member_epoch) == (member_id, leave_epoch)
        assert last.instance_id == (instance or "")
        kinds = [e.kind for e in cluster.groups.events]
        assert kinds[-2:] == ["commit", "heartbeat"]
        assert cluster.groups.members == {}

    run(test)


def test_max_poll_interval_leaves_and_the_next_poll_rejoins() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.heartbeat_interval_ms = 20
        lost: list[set[TopicPartition]] = []
        async with group_consumer(cluster, max_poll_interval_ms=200) as consumer:
            consumer.subscribe(["t"], on_lost=lost.append)
            await poll_n(consumer, 10)
            await until(lambda: bool(lost), what="left after max_poll_interval_ms")
            assert consumer.assignment() == set()
            await until(lambda: cluster.groups.members == {}, what="the leave heartbeat")
            assert cluster.groups.heartbeats()[-1].member_epoch == -1
            await poll_until(consumer, lambda: consumer.assignment() == {T0, T1}, "rejoined")

    run(test)


def test_explicit_commit_and_committed_and_a_stale_commit_fails_clearly() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        from raftka.client.consumer.errors import CommitFailedError

        async with group_consumer(cluster, enable_auto_commit=False) as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            await consumer.commit({T0: 2})
            assert (await consumer.committed(T0)) is not None
            assert (c := await consumer.committed(T0)) and c.offset == 2
            await consumer.commit_async()
            assert cluster.groups.offsets == {T0: 5, T1: 5}
            cluster.groups.member().epoch += 5  # the group moved on
            with pytest.raises(CommitFailedError, match="STALE_MEMBER_EPOCH"):
                await consumer.commit()

    run(test)


def test_subscribe_rejects_a_bad_regex_and_misuse() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        from raftka.client.consumer.errors import IllegalStateError

        async with group_consumer(cluster) as consumer:
            with pytest.raises(group_errors.InvalidRegularExpressionError, match="unterminated"):
                consumer.subscribe(pattern="orders-(")
            with pytest.raises(IllegalStateError, match="topics or pattern, not both"):
                consumer.subscribe(["t"], pattern="t.*")
            consumer.subscribe(pattern="t.*")
            with pytest.raises(IllegalStateError, match="unsubscribe"):
                consumer.assign([T0])

    run(test)


def test_assign_only_consumer_commits_as_a_simple_group() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        async with group_consumer(cluster, enable_auto_commit=False) as consumer:
            consumer.assign([T0])
            await poll_n(consumer, 5)
            await consumer.commit()
            (commit,) = cluster.groups.commits()
            assert (commit.member_id, commit.member_epoch) == ("", -1)
            assert cluster.groups.offsets == {T0: 5}
        async with group_consumer(cluster) as again:  # starts from the committed offset
            again.assign([T0])
            cluster.append("t", 0, [b"new"])
            (record,) = await poll_n(again, 1)
            assert (record.offset, record.value) == (5, b"new")

    run(test)


def test_partitions_that_come_back_are_committed_again_on_close() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        async with group_consumer(cluster, auto_commit_interval_ms=3600_000) as consumer:
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            await consumer.poll(timeout_ms=0)
            member = cluster.groups.member()
            cluster.groups.assign(member.member_id, {T0})  # t-1 revoked: commits 5
            await poll_until(consumer, lambda: consumer.assignment() == {T0}, "revoked")
            assert cluster.groups.offsets[T1] == 5
            cluster.groups.offsets[T1] = 2  # meanwhile another member committed t-1 at 2
            cluster.groups.assign(member.member_id, {T0, T1})
            await poll_until(consumer, lambda: consumer.assignment() == {T0, T1}, "back")
            assert [r.offset for r in await poll_n(consumer, 3)] == [2, 3, 4]
        assert cluster.groups.offsets == {T0: 5, T1: 5}  # close committed t-1 again

    run(test)


@pytest.mark.parametrize("mode", ["stream", "unary"])
def test_unknown_member_as_a_failed_call_is_a_fence_too(mode: str) -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.heartbeat_interval_ms = 50
        lost: list[set[TopicPartition]] = []
        async with group_consumer(cluster, group_heartbeat_mode=mode) as consumer:
            consumer.subscribe(["t"], on_lost=lost.append)
            await poll_n(consumer, 10)
            cluster.groups.members.clear()
            cluster.groups.fail_next.append(group_errors.UnknownMemberIdError("expired"))
            await poll_until(consumer, lambda: bool(lost), "partitions lost")
            await poll_until(consumer, lambda: consumer.assignment() == {T0, T1}, "rejoined")
            assert lost == [{T0, T1}]

    run(test)


def test_a_missing_topic_is_waited_for_with_one_warning() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        from structlog.testing import capture_logs

        with capture_logs() as logs:
            async with group_consumer(cluster) as consumer:
                consumer.subscribe(["later"])
                for _ in range(20):
                    assert await consumer.poll(timeout_ms=5) == []
                await until(
                    lambda: any(e["event"] == "consumer_subscribed_topics_missing" for e in logs),
                    what="the warning",
                )
                for _ in range(20):
                    await consumer.poll(timeout_ms=5)
        warnings = [e for e in logs if e["event"] == "consumer_subscribed_topics_missing"]
        assert len(warnings) == 1 and warnings[0]["topics"] == ["later"]

    run(test)


def test_group_metadata_names_the_member_and_commit_listeners_hear_acknowledged_commits() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        heard: list[dict[TopicPartition, int]] = []
        async with group_consumer(cluster, enable_auto_commit=False) as consumer:
            consumer.add_commit_listener(
                lambda o: heard.append({tp: m.offset for tp, m in o.items()})
            )
            assert consumer.group_metadata().member_epoch == -1  # not a member yet
            consumer.subscribe(["t"])
            await poll_n(consumer, 10)
            member = cluster.groups.member()
            meta = consumer.group_metadata()
            assert (meta.group_id, meta.member_id, meta.member_epoch) == (
                "g",
                member.member_id,
                member.epoch,
            )
            await consumer.commit({T0: 2})
            cluster.groups.member().epoch += 5  # the group moved on: this commit is refused
            with pytest.raises(CommitFailedError):
                await consumer.commit({T0: 4})
            assert heard == [{T0: 2}]

    run(test)


def test_a_restarted_static_member_keeps_joining_while_its_instance_id_is_unreleased() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        # The crashed incarnation still holds the instance id for two more join attempts.
        cluster.groups.answer_next = [ErrorCode.UNRELEASED_INSTANCE_ID] * 2
        async with group_consumer(cluster, group_instance_id="i1", session_timeout_ms=3000) as c:
            c.subscribe(["t"])
            await poll_until(c, lambda: c.assignment() == {T0, T1}, "joined after the release")
            joins = [h for h in cluster.groups.heartbeats() if h.member_epoch == 0]
            assert len(joins) == 3 and {h.instance_id for h in joins} == {"i1"}

    run(test)


def test_an_instance_id_held_past_the_session_timeout_is_an_error() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.answer_next = [ErrorCode.UNRELEASED_INSTANCE_ID] * 1000
        async with group_consumer(cluster, group_instance_id="i1", session_timeout_ms=1000) as c:
            c.subscribe(["t"])
            with pytest.raises(group_errors.UnreleasedInstanceIdError):
                for _ in range(2000):
                    await c.poll(timeout_ms=10)

    run(test)


def test_no_record_of_a_new_partition_is_returned_before_on_assign_returns() -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        release = asyncio.Event()
        entered = asyncio.Event()

        async def on_assign(partitions: set[TopicPartition]) -> None:
            entered.set()
            await release.wait()

        async with group_consumer(cluster) as consumer:
            consumer.subscribe(["t"], on_assign=on_assign)
            early: list[object] = []
            for _ in range(50):
                early += await consumer.poll(timeout_ms=10)
            assert entered.is_set() and early == []
            release.set()
            records = await poll_n(consumer, 10)
            assert {(r.partition, r.offset) for r in records} == {
                (p, i) for p in (0, 1) for i in range(5)
            }

    run(test)


@pytest.mark.parametrize(
    "error",
    [
        group_errors.StaleMemberEpochError("the member epoch moved on"),
        group_errors.CoordinatorNotAvailableError("coordinator moving"),
    ],
)
def test_an_unreadable_committed_offset_is_asked_again_never_reset(
    error: RaftkaError,
) -> None:
    async def test(cluster: FakeGroupCluster) -> None:
        cluster.groups.offsets[T0] = 3
        cluster.groups.offsets[T1] = 4
        cluster.groups.fail_fetches = [error, error]
        async with group_consumer(cluster) as consumer:
            consumer.subscribe(["t"])
            records = await poll_n(consumer, 2 + 1)
            assert {(r.partition, r.offset) for r in records} == {(0, 3), (0, 4), (1, 4)}
            assert len([e for e in cluster.groups.events if e.kind == "fetch"]) >= 3

    run(test)


def test_position_in_on_assign_uses_the_epoch_that_arrived_meanwhile() -> None:
    """Two assignments back to back: the second bumps the epoch before the first has read its
    new partition's committed offset, so that read is refused (STALE_MEMBER_EPOCH) and
    ``position()`` in on_assign must ask again. It must ask with the newer epoch, taken in at
    once, not only once the callback returns (which it never would: a stall until timeout)."""

    async def test(cluster: FakeGroupCluster) -> None:
        t3 = [TopicPartition("t3", p) for p in range(2)]
        cluster.create("t3", 2)
        cluster.append("t3", 1, [f"w{i}".encode() for i in range(5)])
        cluster.groups.offsets[t3[1]] = 2
        positions: dict[TopicPartition, int] = {}
        epochs_seen: list[int] = []
        armed = False

        async with group_consumer(cluster, enable_auto_commit=False) as consumer:

            def on_revoke(partitions: set[TopicPartition]) -> None:
                nonlocal armed
                if armed:  # the second assignment comes while the first is reconciled
                    armed = False
                    cluster.groups.assign(cluster.groups.member().member_id, set(t3))

            async def on_assign(partitions: set[TopicPartition]) -> None:
                for tp in sorted(partitions):
                    positions[tp] = await consumer.position(tp, timeout_ms=10_000)
                epochs_seen.append(consumer.group_metadata().member_epoch)

            consumer.subscribe(["t3"], on_assign=on_assign, on_revoke=on_revoke)
            await poll_until(consumer, lambda: consumer.assignment() == set(t3), "joined")
            member = cluster.groups.member()
            cluster.groups.assign(member.member_id, {t3[0]})
            await poll_until(consumer, lambda: consumer.assignment() == {t3[0]}, "t3-1 revoked")
            positions.clear()
            epochs_seen.clear()
            armed = True
            cluster.groups.assign(member.member_id, {t3[1]})
            await poll_until(consumer, lambda: len(positions) == 2, "both assignments applied")
            assert positions == {t3[0]: 0, t3[1]: 2}  # t3-1's committed offset was read
            assert consumer.group_metadata().member_epoch == member.epoch
            assert len(epochs_seen) == 2 and epochs_seen == sorted(epochs_seen)
            records = await poll_n(consumer, 3)
            assert {(r.topic, r.partition, r.offset) for r in records} == {
                ("t3", 1, 2),
                ("t3", 1, 3),
                ("t3", 1, 4),
            }

    run(test)


def test_group_metadata_keeps_the_old_epoch_until_the_revocation_is_done() -> None:
    """Records of a partition being revoked are the old assignment's: group_metadata() (what
    transactional offset commits carry) names the old epoch until the member has let go, and
    the new one from then on, while offset requests already use the new one."""

    async def test(cluster: FakeGroupCluster) -> None:
        seen: dict[str, tuple[int, int]] = {}

        async with group_consumer(cluster, enable_auto_commit=False) as consumer:

            def record(name: str) -> None:
                seen[name] = (
                    consumer.group_metadata().member_epoch,
                    cluster.groups.member().epoch,
                )

            async def on_revoke(partitions: set[TopicPartition]) -> None:
                record("revoke")
                await consumer.commit({T0: 1})  # as the member's newest epoch: accepted

            consumer.subscribe(["t"], on_revoke=on_revoke)
            await poll_until(consumer, lambda: consumer.assignment() == {T0, T1}, "joined")
            before = consumer.group_metadata().member_epoch
            member = cluster.groups.member()
            cluster.groups.assign(member.member_id, {T1})
            await poll_until(consumer, lambda: consumer.assignment() == {T1}, "t-0 revoked")
            assert seen["revoke"] == (before, before + 1)
            assert consumer.group_metadata().member_epoch == before + 1
            assert cluster.groups.offsets[T0] == 1

    run(test)
