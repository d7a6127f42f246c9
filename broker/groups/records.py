"""The records of ``__consumer_offsets`` (proto/raftka/v1/group_records.proto) as Python values,
and their bytes: ``encode`` for what the shard writes, ``decode`` for what it replays.

A key is the record type as 2 big-endian bytes, then the key message serialized
deterministically: one logical key is always the same bytes, which compaction relies on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.state import (
    CommittedOffset,
    CurrentAssignment,
    MemberMetadata,
    MemberState,
    TopicPartitions,
)
from raftka.common.errors import RaftkaError
from raftka.v1 import group_records_pb2 as rpb


class GroupRecordError(RaftkaError):
    """A __consumer_offsets record this coordinator cannot read (unknown type or bad bytes):
    the partition holds data this version does not understand; upgrade or inspect the log."""


@dataclass(frozen=True, slots=True)
class OffsetCommitRecord:
    group_id: str
    topic: str
    partition: int
    value: CommittedOffset | None


@dataclass(frozen=True, slots=True)
class GroupMetadataRecord:
    group_id: str
    epoch: int | None


@dataclass(frozen=True, slots=True)
class PartitionMetadataRecord:
    group_id: str
    topics: dict[str, int] | None


@dataclass(frozen=True, slots=True)
class MemberMetadataRecord:
    group_id: str
    member_id: str
    value: MemberMetadata | None


@dataclass(frozen=True, slots=True)
class TargetMetadataRecord:
    group_id: str
    assignment_epoch: int | None


@dataclass(frozen=True, slots=True)
class TargetMemberRecord:
    group_id: str
    member_id: str
    partitions: TopicPartitions | None


@dataclass(frozen=True, slots=True)
class CurrentAssignmentRecord:
    group_id: str
    member_id: str
    value: CurrentAssignment | None


GroupRecord = (
    OffsetCommitRecord
    | GroupMetadataRecord
    | PartitionMetadataRecord
    | MemberMetadataRecord
    | TargetMetadataRecord
    | TargetMemberRecord
    | CurrentAssignmentRecord
)

_PREFIX = struct.Struct(">H")

_STATE_TO_PB = {
    MemberState.STABLE: rpb.MEMBER_STATE_STABLE,
    MemberState.UNREVOKED_PARTITIONS: rpb.MEMBER_STATE_UNREVOKED_PARTITIONS,
    MemberState.UNRELEASED_PARTITIONS: rpb.MEMBER_STATE_UNRELEASED_PARTITIONS,
}
_STATE_FROM_PB = {v: k for k, v in _STATE_TO_PB.items()}


def _key(kind: int, key: Message) -> bytes:
    return _PREFIX.pack(kind) + key.SerializeToString(deterministic=True)


def _value(value: Message | None) -> bytes | None:
    return None if value is None else value.SerializeToString(deterministic=True)


def _tps_to_pb(tps: TopicPartitions) -> list[rpb.RecordTopicPartitions]:
    return [
        rpb.RecordTopicPartitions(topic=t, partitions=sorted(ps))
        for t, ps in sorted(tps.items())
        if ps
    ]


def _tps_from_pb(items: object) -> dict[str, frozenset[int]]:
    out: dict[str, frozenset[int]] = {}
    for item in items:  # type: ignore[attr-defined]
        if item.partitions:
            out[item.topic] = out.get(item.topic, frozenset()) | frozenset(item.partitions)
    return out


def encode(record: GroupRecord) -> StoredRecord:
    """The bytes of one record (a tombstone when its value is None)."""
    match record:
        case OffsetCommitRecord(group_id, topic, partition, value):
            key = _key(
                rpb.GROUP_RECORD_OFFSET_COMMIT,
                rpb.OffsetCommitKey(group_id=group_id, topic=topic, partition=partition),
            )
            return StoredRecord(
                key,
                _value(
                    None
                    if value is None
                    else rpb.OffsetCommitValue(
                        offset=value.offset,
                        leader_epoch=value.leader_epoch,
                        metadata=value.metadata,
                        commit_timestamp_ms=value.commit_timestamp_ms,
                    )
                ),
            )
        case GroupMetadataRecord(group_id, epoch):
            key = _key(rpb.GROUP_RECORD_CONSUMER_GROUP_METADATA, rpb.GroupKey(group_id=group_id))
            return StoredRecord(
                key, _value(None if epoch is None else rpb.ConsumerGroupMetadataValue(epoch=epoch))
            )
        case PartitionMetadataRecord(group_id, topics):
            key = _key(rpb.GROUP_RECORD_PARTITION_METADATA, rpb.GroupKey(group_id=group_id))
            value_pb = (
                None
                if topics is None
                else rpb.ConsumerGroupPartitionMetadataValue(
                    topics=[
                        rpb.TopicPartitionCount(topic=t, partitions=n)
                        for t, n in sorted(topics.items())
                    ]
                )
            )
            return StoredRecord(key, _value(value_pb))
        case MemberMetadataRecord(group_id, member_id, meta):
            key = _key(
                rpb.GROUP_RECORD_MEMBER_METADATA,
                rpb.GroupMemberKey(group_id=group_id, member_id=member_id),
            )
            meta_pb = (
                None
                if meta is None
                else rpb.MemberMetadataValue(
                    instance_id=meta.instance_id,
                    rack_id=meta.rack_id,
                    client_id=meta.client_id,
                    client_host=meta.client_host,
                    subscribed_topic_names=list(meta.subscribed_topic_names),
                    subscribed_topic_regex=meta.subscribed_topic_regex,
                    rebalance_timeout_ms=meta.rebalance_timeout_ms,
                    session_timeout_ms=meta.session_timeout_ms,
                    server_assignor=meta.server_assignor,
                    classic_protocols=list(meta.classic_protocols),
                )
            )
            return StoredRecord(key, _value(meta_pb))
        case TargetMetadataRecord(group_id, assignment_epoch):
            key = _key(rpb.GROUP_RECORD_TARGET_ASSIGNMENT_METADATA, rpb.GroupKey(group_id=group_id))
            return StoredRecord(
                key,
                _value(
                    None
                    if assignment_epoch is None
                    else rpb.TargetAssignmentMetadataValue(assignment_epoch=assignment_epoch)
                ),
            )
        case TargetMemberRecord(group_id, member_id, partitions):
            key = _key(
                rpb.GROUP_RECORD_TARGET_ASSIGNMENT_MEMBER,
                rpb.GroupMemberKey(group_id=group_id, member_id=member_id),
            )
            return StoredRecord(
                key,
                _value(
                    None
                    if partitions is None
                    else rpb.TargetAssignmentMemberValue(topic_partitions=_tps_to_pb(partitions))
                ),
            )
        case CurrentAssignmentRecord(group_id, member_id, current):
            key = _key(
                rpb.GROUP_RECORD_CURRENT_MEMBER_ASSIGNMENT,
                rpb.GroupMemberKey(group_id=group_id, member_id=member_id),
            )
            current_pb = (
                None
                if current is None
                else rpb.CurrentMemberAssignmentValue(
                    member_epoch=current.member_epoch,
                    previous_member_epoch=current.previous_member_epoch,
                    state=_STATE_TO_PB[current.state],
                    assigned_partitions=_tps_to_pb(current.assigned),
                    partitions_pending_revocation=_tps_to_pb(current.pending_revocation),
                )
            )
            return StoredRecord(key, _value(current_pb))
    raise TypeError(f"not a group record: {record!r}")  # pragma: no cover


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except DecodeError as e:
        raise GroupRecordError(f"__consumer_offsets record: undecodable {what}: {e}") from e


def decode(stored: StoredRecord) -> GroupRecord:
    """The record of some stored bytes; GroupRecordError for an unknown type or bad bytes."""
    if len(stored.key) < _PREFIX.size:
        raise GroupRecordError(
            f"__consumer_offsets record key of {len(stored.key)} bytes: too short for a type"
        )
    (kind,) = _PREFIX.unpack_from(stored.key)
    body, value = stored.key[_PREFIX.size :], stored.value
    if kind == rpb.GROUP_RECORD_OFFSET_COMMIT:
        ok = rpb.OffsetCommitKey()
        _parse(ok, body, "offset commit key")
        offset: CommittedOffset | None = None
        if value is not None:
            ov = rpb.OffsetCommitValue()
            _parse(ov, value, "offset commit value")
            offset = CommittedOffset(
                ov.offset, ov.leader_epoch, ov.metadata, ov.commit_timestamp_ms
            )
        return OffsetCommitRecord(ok.group_id, ok.topic, ok.partition, offset)
    if kind in (
        rpb.GROUP_RECORD_CONSUMER_GROUP_METADATA,
        rpb.GROUP_RECORD_PARTITION_METADATA,
        rpb.GROUP_RECORD_TARGET_ASSIGNMENT_METADATA,
    ):
        gk = rpb.GroupKey()
        _parse(gk, body, "group key")
        if kind == rpb.GROUP_RECORD_CONSUMER_GROUP_METADATA:
            epoch: int | None = None
            if value is not None:
                gv = rpb.ConsumerGroupMetadataValue()
                _parse(gv, value, "group metadata value")
                epoch = gv.epoch
            return GroupMetadataRecord(gk.group_id, epoch)
        if kind == rpb.GROUP_RECORD_PARTITION_METADATA:
            topics: dict[str, int] | None = None
            if value is not None:
                pv = rpb.ConsumerGroupPartitionMetadataValue()
                _parse(pv, value, "partition metadata value")
                topics = {t.topic: t.partitions for t in pv.topics}
            return PartitionMetadataRecord(gk.group_id, topics)
        assignment_epoch: int | None = None
        if value is not None:
            tv = rpb.TargetAssignmentMetadataValue()
            _parse(tv, value, "target assignment metadata value")
            assignment_epoch = tv.assignment_epoch
        return TargetMetadataRecord(gk.group_id, assignment_epoch)
    if kind in (
        rpb.GROUP_RECORD_MEMBER_METADATA,
        rpb.GROUP_RECORD_TARGET_ASSIGNMENT_MEMBER,
        rpb.GROUP_RECORD_CURRENT_MEMBER_ASSIGNMENT,
    ):
        mk = rpb.GroupMemberKey()
        _parse(mk, body, "member key")
        if kind == rpb.GROUP_RECORD_MEMBER_METADATA:
            meta: MemberMetadata | None = None
            if value is not None:
                mv = rpb.MemberMetadataValue()
                _parse(mv, value, "member metadata value")
                meta = MemberMetadata(
                    instance_id=mv.instance_id,
                    rack_id=mv.rack_id,
                    client_id=mv.client_id,
                    client_host=mv.client_host,
                    subscribed_topic_names=tuple(mv.subscribed_topic_names),
                    subscribed_topic_regex=mv.subscribed_topic_regex,
                    rebalance_timeout_ms=mv.rebalance_timeout_ms,
                    session_timeout_ms=mv.session_timeout_ms,
                    server_assignor=mv.server_assignor,
                    classic_protocols=tuple(mv.classic_protocols),
                )
            return MemberMetadataRecord(mk.group_id, mk.member_id, meta)
        if kind == rpb.GROUP_RECORD_TARGET_ASSIGNMENT_MEMBER:
            partitions: TopicPartitions | None = None
            if value is not None:
                tm = rpb.TargetAssignmentMemberValue()
                _parse(tm, value, "target assignment member value")
                partitions = _tps_from_pb(tm.topic_partitions)
            return TargetMemberRecord(mk.group_id, mk.member_id, partitions)
        current: CurrentAssignment | None = None
        if value is not None:
            cv = rpb.CurrentMemberAssignmentValue()
            _parse(cv, value, "current member assignment value")
            if cv.state not in _STATE_FROM_PB:
                raise GroupRecordError(
                    f"__consumer_offsets record: unknown member state {cv.state}"
                )
            current = CurrentAssignment(
                member_epoch=cv.member_epoch,
                previous_member_epoch=cv.previous_member_epoch,
                state=_STATE_FROM_PB[cv.state],
                assigned=_tps_from_pb(cv.assigned_partitions),
                pending_revocation=_tps_from_pb(cv.partitions_pending_revocation),
            )
        return CurrentAssignmentRecord(mk.group_id, mk.member_id, current)
    raise GroupRecordError(
        f"__consumer_offsets record of unknown type {kind}: written by a newer version?"
    )
