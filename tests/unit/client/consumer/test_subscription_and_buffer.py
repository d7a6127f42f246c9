"""Positions, seeks and reset policies (SubscriptionState) and the bounded prefetch buffer."""

from __future__ import annotations

import pytest

from raftka.client.consumer.backoff import PartitionBackoff
from raftka.client.consumer.errors import IllegalStateError, NoOffsetForPartitionError
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.records import CompletedFetch, batch_spans
from raftka.client.consumer.subscription import ResetStrategy, SubscriptionState
from raftka.client.types import TopicPartition
from raftka.common.records.builder import build_batch
from raftka.common.rpc.retry import RetryPolicy

A, B, C = TopicPartition("t", 0), TopicPartition("t", 1), TopicPartition("u", 0)


def fetch(
    tp: TopicPartition, base: int, count: int, fetch_offset: int | None = None
) -> CompletedFetch:
    data = bytes(build_batch([(0, None, b"x" * 10, ())] * count, base_offset=base))
    return CompletedFetch(
        tp, data, base if fetch_offset is None else fetch_offset, batch_spans(data, verify=True)
    )


# ---------------------------------------------------------------- SubscriptionState


def test_assign_keeps_positions_of_partitions_kept() -> None:
    s = SubscriptionState("latest")
    s.assign([A, B])
    s.seek(A, 5)
    removed = s.assign([A, C])
    assert removed == {B}
    assert s.assignment == {A, C}
    assert s.state(A).position == 5 and not s.state(A).initializing
    assert s.state(C).position is None and s.state(C).initializing
    assert s.initializing() == [C]


def test_reset_policies() -> None:
    earliest = SubscriptionState("earliest")
    earliest.assign([A])
    earliest.apply_reset_policy(A)
    assert earliest.awaiting_reset() == {A: ResetStrategy.EARLIEST}
    assert earliest.fetchable() == []
    latest = SubscriptionState("latest")
    latest.assign([A])
    latest.apply_reset_policy(A)
    assert latest.awaiting_reset() == {A: ResetStrategy.LATEST}
    none = SubscriptionState("none")
    none.assign([A, B])
    none.apply_reset_policy(A)
    none.apply_reset_policy(B)
    error = none.first_error()
    assert isinstance(error, NoOffsetForPartitionError)
    assert error.partitions == [A, B]  # one error naming both
    assert "auto_offset_reset is 'none'" in error.message and "seek()" in error.message
    none.seek(A, 3)  # a seek clears the partition's error
    assert none.fetchable() == [A]
    assert none.first_error() is not None  # B still has none


def test_every_change_of_position_bumps_the_version_but_poll_progress_does_not() -> None:
    s = SubscriptionState("latest")
    s.assign([A])
    versions = [s.state(A).version]
    s.seek(A, 1)
    versions.append(s.state(A).version)
    s.request_reset(A, ResetStrategy.EARLIEST)
    versions.append(s.state(A).version)
    s.seek(A, 0)
    s.advance(A, 10, leader_epoch=4)
    versions.append(s.state(A).version)
    assert versions == [0, 1, 2, 3]
    assert s.state(A).position == 10 and s.state(A).leader_epoch == 4


@pytest.mark.parametrize("offset", [-1, 1.5, True, "3"])
def test_seek_rejects_bad_offsets_and_changes_nothing(offset: object) -> None:
    s = SubscriptionState("latest")
    s.assign([A])
    s.seek(A, 7)
    with pytest.raises(IllegalStateError, match="offset must be an integer >= 0"):
        s.seek(A, offset)  # type: ignore[arg-type]
    assert s.state(A).position == 7


def test_unassigned_partitions_and_bad_assignments_are_refused() -> None:
    s = SubscriptionState("latest")
    s.assign([A])
    with pytest.raises(
        IllegalStateError, match=r"u-0 is not assigned to this consumer: assign\(\) it first"
    ):
        s.seek(C, 0)
    with pytest.raises(IllegalStateError, match="partition must be an integer >= 0"):
        s.assign([TopicPartition("t", -1)])
    with pytest.raises(IllegalStateError, match="TopicPartition"):
        s.assign(["t-0"])  # type: ignore[list-item]
    assert s.assignment == {A}
    s.assign([("t", 1)])  # type: ignore[list-item]  # plain tuples are fine
    assert s.assignment == {B}


# ---------------------------------------------------------------- FetchBuffer


def assigned_at(position: int, *tps: TopicPartition) -> SubscriptionState:
    s = SubscriptionState("latest")
    s.assign(tps)
    for tp in tps:
        s.seek(tp, position)
    return s


def test_next_fetch_starts_after_buffered_data() -> None:
    buf = FetchBuffer(partition_limit=1 << 20, total_limit=1 << 30)
    assert buf.next_fetch_offset(A, 4) == 4
    buf.add(fetch(A, 4, 3))
    buf.add(fetch(A, 7, 2))
    assert buf.next_fetch_offset(A, 4) == 9
    buf.clear(A)
    assert buf.next_fetch_offset(A, 4) == 4 and buf.held_bytes == 0


def test_prefetch_is_bounded_per_partition_by_undecoded_bytes() -> None:
    one = fetch(A, 0, 10)
    buf = FetchBuffer(partition_limit=one.nbytes + 1, total_limit=1 << 30)
    s = assigned_at(0, A)
    assert buf.has_room(A)
    buf.add(one)
    assert buf.has_room(A), "one response buffered: the next one may be fetched already"
    buf.add(fetch(A, 10, 10))
    assert not buf.has_room(A), "two responses undecoded: stop fetching"
    assert buf.has_room(B), "other partitions are not affected"
    records = buf.drain(3, s)  # decodes the first response's only batch
    assert [r.offset for r in records] == [0, 1, 2]
    assert buf.has_room(A), "draining makes room before the response is used up (prefetch)"
    assert buf.held_bytes == 2 * one.nbytes  # the first response is still referenced


def test_total_limit_stops_every_partition() -> None:
    one = fetch(A, 0, 10)
    buf = FetchBuffer(partition_limit=1 << 20, total_limit=2 * one.nbytes)
    s = assigned_at(0, A, B, C)
    buf.add(one)
    buf.add(fetch(B, 0, 10))
    assert not buf.has_room(C) and not buf.has_room(A)
    buf.drain(100, s)
    assert buf.held_bytes == 0 and buf.has_room(C)


def test_drain_advances_positions_and_takes_turns() -> None:
    buf = FetchBuffer(1 << 20, 1 << 30)
    s = assigned_at(0, A, B)
    buf.add(fetch(A, 0, 5))
    buf.add(fetch(A, 5, 5))
    buf.add(fetch(B, 0, 5))
    first = buf.drain(4, s)
    assert [(r.partition, r.offset) for r in first] == [(0, 0), (0, 1), (0, 2), (0, 3)]
    assert s.state(A).position == 4 and s.state(B).position == 0
    second = buf.drain(4, s)  # A went first last time: B first now
    assert [(r.partition, r.offset) for r in second] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    rest = buf.drain(100, s)
    assert [(r.partition, r.offset) for r in rest] == [(0, 4), (1, 4)] + [
        (0, o) for o in range(5, 10)
    ]
    assert s.state(A).position == 10 and s.state(B).position == 5
    assert not buf.has_data() and buf.held_bytes == 0


def test_stale_data_is_dropped_not_returned() -> None:
    buf = FetchBuffer(1 << 20, 1 << 30)
    s = assigned_at(0, A, B)
    buf.add(fetch(A, 0, 5))
    buf.add(fetch(B, 0, 5))
    s.seek(A, 100)  # the consumer clears on seek; the buffer also checks positions itself
    s.assign([B])
    records = buf.drain(100, s)
    assert [(r.partition, r.offset) for r in records] == [(1, o) for o in range(5)]
    assert s.state(B).position == 5 and buf.held_bytes == 0


# ---------------------------------------------------------------- PartitionBackoff


def test_backoff_doubles_per_failure_and_clears_on_success() -> None:
    now = [100.0]
    backoff = PartitionBackoff(RetryPolicy(0.1, 1.0), lambda: now[0])
    assert not backoff.waiting(A, now[0]) and backoff.next_expiry(now[0]) is None
    waits = []
    for _ in range(6):
        backoff.failed(A)
        expiry = backoff.next_expiry(now[0])
        assert expiry is not None and backoff.waiting(A, now[0])
        waits.append(expiry - now[0])
    assert 0.05 <= waits[0] <= 0.1 and 0.1 <= waits[1] <= 0.2 and 0.5 <= waits[-1] <= 1.0
    assert not backoff.waiting(A, now[0] + 1.0)
    backoff.failed(B)
    backoff.succeeded(A)
    backoff.retain(lambda tp: tp != B)
    assert backoff.next_expiry(now[0]) is None
