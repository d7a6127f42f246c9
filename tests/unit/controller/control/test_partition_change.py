"""The partition change builder: its leader choice rules (ISR first, preferred replica first)."""

from __future__ import annotations

from collections.abc import Iterable

from raftka.common.ids import BrokerId, LeaderEpoch
from raftka.common.metadata.model import NO_LEADER, LeaderRecoveryState, PartitionState
from raftka.controller.control.partition_change import ElectionType, PartitionChangeBuilder
from raftka.v1.metadata_pb2 import MetadataRecord, PartitionChangeRecord


def _ids(*values: int) -> tuple[BrokerId, ...]:
    return tuple(BrokerId(v) for v in values)


def _state(replicas: Iterable[int], isr: Iterable[int], leader: int) -> PartitionState:
    return PartitionState(
        replicas=_ids(*replicas),
        isr=_ids(*isr),
        leader=BrokerId(leader),
        leader_epoch=LeaderEpoch(3),
    )


def _build(
    state: PartitionState,
    active: Iterable[int],
    *,
    target_isr: Iterable[int] | None = None,
    election: ElectionType = ElectionType.ONLINE,
    unclean: bool = False,
) -> PartitionChangeRecord | None:
    allowed = set(active)
    record: MetadataRecord | None = PartitionChangeBuilder(
        "tid",
        4,
        state,
        lambda b: b in allowed,
        target_isr=None if target_isr is None else _ids(*target_isr),
        election=election,
        unclean_allowed=unclean,
    ).build()
    return None if record is None else record.partition_change


def test_no_change_builds_nothing() -> None:
    assert _build(_state([1, 2, 3], [1, 2, 3], 1), [1, 2, 3]) is None


def test_isr_shrink_keeps_a_valid_leader_without_setting_it() -> None:
    change = _build(_state([1, 2, 3], [1, 2, 3], 1), [1, 2], target_isr=[1, 2])
    assert change is not None
    assert (change.topic_id, change.partition_id) == ("tid", 4)
    assert list(change.isr.values) == [1, 2]
    assert not change.HasField("leader")  # so the leader epoch is not bumped
    assert not change.HasField("leader_recovery_state")


def test_new_leader_is_first_valid_replica_in_replica_order() -> None:
    # ISR order is [3, 2] but replica order prefers 2.
    change = _build(_state([1, 2, 3], [1, 3, 2], 1), [2, 3], target_isr=[3, 2])
    assert change is not None and change.leader == 2 and list(change.isr.values) == [3, 2]


def test_acceptability_is_respected() -> None:
    # 2 is in the ISR but not acceptable (e.g. in controlled shutdown): 3 is elected.
    change = _build(_state([1, 2, 3], [1, 2, 3], 1), [3], target_isr=[2, 3])
    assert change is not None and change.leader == 3


def test_no_valid_leader_gives_minus_one_and_never_an_empty_isr() -> None:
    change = _build(_state([1, 2], [1], 1), [2], target_isr=[])
    assert change is not None
    assert change.leader == NO_LEADER
    assert not change.HasField("isr")  # the last member stays listed


def test_unclean_election_takes_first_acceptable_replica_and_marks_recovering() -> None:
    change = _build(_state([1, 2, 3], [1], 1), [3, 2], target_isr=[], unclean=True)
    assert change is not None
    assert change.leader == 2
    assert list(change.isr.values) == [2]
    assert change.leader_recovery_state == LeaderRecoveryState.RECOVERING


def test_unclean_allowed_but_clean_choice_exists() -> None:
    change = _build(_state([1, 2, 3], [1, 3], 1), [2, 3], target_isr=[3], unclean=True)
    assert (
        change is not None and change.leader == 3 and not change.HasField("leader_recovery_state")
    )


def test_unclean_with_no_acceptable_replica_leaves_partition_offline() -> None:
    change = _build(_state([1, 2], [1], 1), [], target_isr=[], unclean=True)
    assert change is not None and change.leader == NO_LEADER and not change.HasField("isr")


def test_offline_partition_gets_a_leader_when_an_isr_member_returns() -> None:
    change = _build(_state([1, 2], [2], -1), [2])
    assert change is not None and change.leader == 2 and not change.HasField("isr")


def test_preferred_election() -> None:
    state = _state([1, 2, 3], [1, 2, 3], 2)
    change = _build(state, [1, 2, 3], election=ElectionType.PREFERRED)
    assert change is not None and change.leader == 1
    # Preferred replica not valid: the current leader stays, nothing changes.
    assert _build(state, [2, 3], election=ElectionType.PREFERRED) is None
    # Online election does not move a valid leader to the preferred replica.
    assert _build(state, [1, 2, 3]) is None


# ---- reassignment (KIP-455) ----


def _reassigning(
    replicas: Iterable[int],
    isr: Iterable[int],
    leader: int,
    adding: Iterable[int],
    removing: Iterable[int],
) -> PartitionState:
    return PartitionState(
        replicas=_ids(*replicas),
        isr=_ids(*isr),
        leader=BrokerId(leader),
        leader_epoch=LeaderEpoch(3),
        adding_replicas=_ids(*adding),
        removing_replicas=_ids(*removing),
    )


def test_isr_covering_the_target_completes_the_reassignment() -> None:
    state = _reassigning([4, 2, 1, 3], [1, 2, 3], 1, adding=[4], removing=[3])
    change = _build(state, [1, 2, 3, 4], target_isr=[1, 2, 3, 4])
    assert change is not None
    assert list(change.replicas.values) == [4, 2, 1]
    assert list(change.isr.values) == [1, 2, 4]
    assert list(change.adding_replicas.values) == [] and list(change.removing_replicas.values) == []
    assert change.leader == 1  # set although unchanged: 3 left, so the leader epoch is bumped


def test_isr_short_of_the_target_keeps_the_reassignment_going() -> None:
    state = _reassigning([4, 5, 1, 3], [1, 3], 1, adding=[4, 5], removing=[3])
    change = _build(state, [1, 3, 4, 5], target_isr=[1, 3, 4])
    assert change is not None
    assert list(change.isr.values) == [1, 3, 4]
    for name in ("replicas", "adding_replicas", "removing_replicas", "leader"):
        assert not change.HasField(name)


def test_completion_replaces_a_removed_leader_from_the_target_in_replica_order() -> None:
    state = _reassigning([3, 2, 1], [1, 2], 1, adding=[3], removing=[1])
    change = _build(state, [1, 2, 3], target_isr=[1, 2, 3])
    assert change is not None
    assert list(change.replicas.values) == [3, 2] and change.leader == 3
    assert list(change.isr.values) == [2, 3]


def test_target_replicas_adding_and_removing_are_written() -> None:
    state = _state([1, 2, 3], [1, 2, 3], 1)
    record = PartitionChangeBuilder(
        "tid",
        4,
        state,
        lambda b: True,
        target_replicas=_ids(4, 1, 2, 3),
        target_adding=_ids(4),
        target_removing=_ids(3),
    ).build()
    assert record is not None
    change = record.partition_change
    assert list(change.replicas.values) == [4, 1, 2, 3]
    assert list(change.adding_replicas.values) == [4]
    assert list(change.removing_replicas.values) == [3]
    assert not change.HasField("leader") and not change.HasField("isr")
