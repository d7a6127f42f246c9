"""The __consumer_offsets record format: deterministic keys, round trips, refusals."""

from __future__ import annotations

import struct

import pytest

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    GroupRecord,
    GroupRecordError,
    MemberMetadataRecord,
    OffsetCommitRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
    decode,
    encode,
)
from raftka.broker.groups.state import (
    CommittedOffset,
    CurrentAssignment,
    MemberMetadata,
    MemberState,
)

RECORDS: list[GroupRecord] = [
    OffsetCommitRecord("g", "t", 3, CommittedOffset(10, 2, "meta", 1234)),
    OffsetCommitRecord("g", "t", 3, None),
    GroupMetadataRecord("g", 7),
    GroupMetadataRecord("g", None),
    PartitionMetadataRecord("g", {"t": 3, "a": 1}),
    MemberMetadataRecord(
        "g", "m", MemberMetadata("i", "r", "c", "h", ("a", "t"), "x.*", 100, 200, "range")
    ),
    TargetMetadataRecord("g", 7),
    TargetMemberRecord("g", "m", {"t": frozenset({2, 0})}),
    CurrentAssignmentRecord(
        "g",
        "m",
        CurrentAssignment(
            5, 4, MemberState.UNREVOKED_PARTITIONS, {"t": frozenset({1})}, {"a": frozenset({0})}
        ),
    ),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_round_trip(record: GroupRecord) -> None:
    assert decode(encode(record)) == record


def test_keys_are_typed_and_the_same_for_the_same_logical_key() -> None:
    a = encode(OffsetCommitRecord("g", "t", 3, CommittedOffset(1, 0, "", 0)))
    b = encode(OffsetCommitRecord("g", "t", 3, None))
    assert a.key == b.key and b.value is None
    assert struct.unpack(">H", a.key[:2]) == (1,)
    kinds = {encode(r).key[:2] for r in RECORDS}
    assert len(kinds) == 7
    # Group and member keys never collide across types.
    assert encode(GroupMetadataRecord("g", 1)).key != encode(TargetMetadataRecord("g", 1)).key


def test_unknown_type_and_bad_bytes_are_refused() -> None:
    with pytest.raises(GroupRecordError, match="unknown type 99"):
        decode(StoredRecord(struct.pack(">H", 99) + b"x", b""))
    with pytest.raises(GroupRecordError, match="too short"):
        decode(StoredRecord(b"\x00", None))
    with pytest.raises(GroupRecordError, match="undecodable"):
        decode(StoredRecord(struct.pack(">H", 3) + b"\xff\xff\xff", None))
    good = encode(GroupMetadataRecord("g", 1))
    with pytest.raises(GroupRecordError, match="undecodable"):
        decode(StoredRecord(good.key, b"\x08"))  # a varint cut short
