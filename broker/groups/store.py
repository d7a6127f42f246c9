"""All groups of one shard, changed only by applying records (live writes and replay alike)."""

from __future__ import annotations

from typing import TypeVar

from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    GroupRecord,
    MemberMetadataRecord,
    OffsetCommitRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
)
from raftka.broker.groups.state import GroupState

K = TypeVar("K")
V = TypeVar("V")


class GroupStore:
    __slots__ = ("groups",)

    def __init__(self) -> None:
        self.groups: dict[str, GroupState] = {}

    def get(self, group_id: str) -> GroupState | None:
        return self.groups.get(group_id)

    def apply(self, record: GroupRecord) -> None:
        group = self.groups.get(record.group_id)
        if group is None:
            group = self.groups[record.group_id] = GroupState(record.group_id)
        match record:
            case OffsetCommitRecord(_, topic, partition, value):
                _set(group.offsets, (topic, partition), value)
            case GroupMetadataRecord(_, epoch):
                group.epoch = epoch
            case PartitionMetadataRecord(_, topics):
                group.partition_metadata = None if topics is None else dict(topics)
            case MemberMetadataRecord(_, member_id, meta):
                _set(group.members, member_id, meta)
            case TargetMetadataRecord(_, assignment_epoch):
                group.assignment_epoch = assignment_epoch
            case TargetMemberRecord(_, member_id, partitions):
                _set(group.targets, member_id, partitions)
            case CurrentAssignmentRecord(_, member_id, current):
                _set(group.currents, member_id, current)
        if group.holds_nothing():
            del self.groups[record.group_id]


def _set(mapping: dict[K, V], key: K, value: V | None) -> None:
    if value is None:
        mapping.pop(key, None)
    else:
        mapping[key] = value
