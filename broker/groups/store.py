"""All groups of one shard, changed only by applying records and transaction markers (live
writes and replay alike, in log order)."""

from __future__ import annotations

from typing import TypeVar

import structlog

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.pending import OffsetKey, PendingOffset, PendingTxnOffsets
from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    GroupRecord,
    MemberMetadataRecord,
    OffsetCommitRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
    decode,
)
from raftka.broker.groups.state import GroupState

log = structlog.get_logger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class GroupStore:
    __slots__ = ("committed_at", "groups", "pending", "position")

    def __init__(self) -> None:
        self.groups: dict[str, GroupState] = {}
        self.pending = PendingTxnOffsets()
        # How many records were applied: a record's place in the log order.
        self.position = 0
        # The position of the record that set each committed offset.
        self.committed_at: dict[OffsetKey, int] = {}

    def get(self, group_id: str) -> GroupState | None:
        return self.groups.get(group_id)

    def apply_stored(self, stored: StoredRecord) -> None:
        """One record as stored: a transactional one (``producer_id`` >= 0) becomes pending."""
        record = decode(stored)
        if stored.producer_id < 0:
            self.apply(record)
            return
        self.position += 1
        match record:
            case OffsetCommitRecord(group_id, topic, partition, value) if value is not None:
                self.pending.add(
                    stored.producer_id,
                    stored.producer_epoch,
                    (group_id, topic, partition),
                    PendingOffset(self.position, value),
                )
            case _:  # only TxnOffsetCommit writes transactionally, and never tombstones
                log.warning(
                    "group_transactional_record_ignored",
                    producer_id=stored.producer_id,
                    record=type(record).__name__,
                )

    def complete(self, producer_id: int, committed: bool) -> int:
        """The producer's marker: COMMIT makes its pending offsets committed, except where a
        later record already set the offset; ABORT drops them. Returns how many it set."""
        applied = 0
        for key, pending in self.pending.take(producer_id):
            if not committed or pending.position <= self.committed_at.get(key, 0):
                continue
            group_id, topic, partition = key
            group = self.groups.get(group_id)
            if group is None:
                group = self.groups[group_id] = GroupState(group_id)
            group.offsets[(topic, partition)] = pending.value
            self.committed_at[key] = pending.position
            applied += 1
        return applied

    def apply(self, record: GroupRecord) -> None:
        self.position += 1
        group = self.groups.get(record.group_id)
        if group is None:
            group = self.groups[record.group_id] = GroupState(record.group_id)
        match record:
            case OffsetCommitRecord(group_id, topic, partition, value):
                _set(group.offsets, (topic, partition), value)
                _set(
                    self.committed_at,
                    (group_id, topic, partition),
                    None if value is None else self.position,
                )
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
