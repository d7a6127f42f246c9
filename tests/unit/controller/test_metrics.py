from __future__ import annotations

from prometheus_client import CollectorRegistry

from raftka.common.ids import Index, NodeId, Term
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import partition_change_record, topic_record
from raftka.controller.metrics import (
    ControllerCollector,
    ControllerMetrics,
    PartitionEvents,
    RaftView,
    partition_events,
)
from raftka.controller.raft.progress import ReplicaState
from raftka.controller.raft.status import ProgressStatus, Role, Status
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord
from tests.unit.common.metadata.builders import partition

NOTHING = PartitionEvents()


def _image(*records: MetadataRecord) -> MetadataImage:
    image = MetadataImage()
    image.apply_batch(MetadataBatch(records=records), 1)
    return image


IMAGE = _image(
    topic_record("t", "id"),
    partition("id", 0, [1, 2, 3], isr=[1, 2], leader=1),
    partition("id", 1, [1, 2, 3], isr=[1, 2, 3], leader=-1),
)


def _events(**change: object) -> PartitionEvents:
    (events,) = partition_events(IMAGE, [partition_change_record("id", 0, **change)])  # type: ignore[arg-type]
    return events


def test_a_leader_from_the_isr_is_a_clean_election_and_one_outside_it_unclean() -> None:
    assert _events(leader=2, isr=[2]) == PartitionEvents(elected=True, isr_shrunk=True)
    assert _events(leader=3, isr=[3]) == PartitionEvents(
        elected=True, unclean=True, isr_shrunk=True, isr_expanded=True
    )
    offline = partition_change_record("id", 1, leader=2)
    assert partition_events(IMAGE, [offline]) == [PartitionEvents(elected=True)]


def test_isr_changes_and_non_elections() -> None:
    assert _events(isr=[1, 2, 3]) == PartitionEvents(isr_expanded=True)
    assert _events(isr=[1]) == PartitionEvents(isr_shrunk=True)
    assert _events(leader=1) == NOTHING, "the same leader again (an epoch bump) is no election"
    assert _events(leader=-1) == NOTHING, "losing the leader is not an election"
    assert partition_events(IMAGE, [topic_record("u", "id-u")]) == []
    assert partition_events(IMAGE, [partition_change_record("gone", 0, isr=[1])]) == []


def test_two_changes_of_one_partition_in_a_batch_are_taken_in_order() -> None:
    batch = [
        partition_change_record("id", 0, isr=[1]),  # 2 leaves
        partition_change_record("id", 0, isr=[1, 2]),  # 2 comes back: an expansion, not a no-op
    ]
    assert partition_events(IMAGE, batch) == [
        PartitionEvents(isr_shrunk=True),
        PartitionEvents(isr_expanded=True),
    ]


def test_committed_batches_are_counted_only_on_the_leader() -> None:
    registry = CollectorRegistry()
    leader = [False]
    metrics = ControllerMetrics(registry, lambda: leader[0])
    batch = MetadataBatch(records=[partition_change_record("id", 0, leader=2, isr=[2])])
    metrics.before_apply(IMAGE, batch)
    get = registry.get_sample_value
    assert get("raftka_controller_leader_elections_total", {"kind": "clean"}) == 0
    leader[0] = True
    metrics.before_apply(IMAGE, batch)
    assert get("raftka_controller_leader_elections_total", {"kind": "clean"}) == 1
    assert get("raftka_controller_isr_shrinks_total") == 1


def test_events_are_counted_by_kind() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry, lambda: True)
    metrics.count(
        [
            PartitionEvents(elected=True, isr_shrunk=True),
            PartitionEvents(elected=True, unclean=True, isr_expanded=True),
            PartitionEvents(isr_expanded=True),
            NOTHING,
        ]
    )
    get = registry.get_sample_value
    assert get("raftka_controller_leader_elections_total", {"kind": "clean"}) == 1
    assert get("raftka_controller_leader_elections_total", {"kind": "unclean"}) == 1
    assert get("raftka_controller_isr_shrinks_total") == 1
    assert get("raftka_controller_isr_expands_total") == 2


def _status(role: Role) -> Status:
    progress = (
        (
            ProgressStatus(NodeId(2), Index(40), Index(41), ReplicaState.REPLICATE, 0),
            ProgressStatus(NodeId(3), Index(50), Index(51), ReplicaState.REPLICATE, 0),
        )
        if role is Role.LEADER
        else ()
    )
    return Status(
        node_id=NodeId(1),
        role=role,
        term=Term(7),
        voted_for=NodeId(1),
        leader_id=NodeId(1),
        commit_index=Index(50),
        last_index=Index(52),
        applied_index=Index(49),
        snapshot_index=Index(10),
        snapshot_term=Term(3),
        progress=progress,
        transfer_target=None,
    )


def _collect(role: Role, active: bool, saved_at: float | None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        ControllerCollector(
            RaftView(
                status=lambda: _status(role),
                is_active=lambda: active,
                image=lambda: IMAGE,
                log_size_bytes=lambda: 4096,
                snapshot_saved_at=lambda: saved_at,
                clock=lambda: 1000.0,
            )
        )
    )
    return registry


def test_the_active_controller_reports_raft_progress_and_partition_health() -> None:
    get = _collect(Role.LEADER, True, 940.0).get_sample_value
    assert get("raftka_controller_active") == 1
    assert get("raftka_controller_raft_term") == 7
    assert get("raftka_controller_raft_commit_index") == 50
    assert get("raftka_controller_raft_applied_index") == 49
    assert get("raftka_controller_raft_commit_lag", {"voter": "2"}) == 10
    assert get("raftka_controller_raft_commit_lag", {"voter": "3"}) == 0
    assert get("raftka_controller_metadata_log_size_bytes") == 4096
    assert get("raftka_controller_snapshot_age_seconds") == 60
    assert get("raftka_controller_partitions") == 2
    assert get("raftka_controller_offline_partitions") == 1
    assert get("raftka_controller_under_replicated_partitions") == 1


def test_a_follower_reports_no_lag_and_no_partition_counts() -> None:
    get = _collect(Role.FOLLOWER, False, None).get_sample_value
    assert get("raftka_controller_active") == 0
    assert get("raftka_controller_raft_commit_lag", {"voter": "2"}) is None
    assert get("raftka_controller_snapshot_age_seconds") is None
    assert get("raftka_controller_offline_partitions") == 0
    assert get("raftka_controller_raft_term") == 7
