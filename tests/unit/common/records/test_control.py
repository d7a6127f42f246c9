from __future__ import annotations

import struct

import pytest

from raftka.common.records import InvalidRecordError, build_batch, decode_batch, validate
from raftka.common.records.batch import NO_SEQUENCE
from raftka.common.records.control import (
    ControlType,
    EndTxnMarker,
    build_end_txn_marker,
    is_end_txn_marker,
    parse_end_txn_marker,
)


@pytest.mark.parametrize("committed", [True, False])
def test_marker_round_trip_and_layout(committed: bool) -> None:
    batch = build_end_txn_marker(77, 5, committed, 12, timestamp=1_000, partition_leader_epoch=3)
    header = validate(batch)
    assert header.attributes == 0x30
    assert header.is_control and header.is_transactional and is_end_txn_marker(header)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 5, NO_SEQUENCE)
    assert header.records_count == 1 and header.partition_leader_epoch == 3
    record = decode_batch(batch).records[0]
    assert record.key == struct.pack(">hh", 0, 1 if committed else 0)
    assert record.value == struct.pack(">hi", 0, 12)
    marker = parse_end_txn_marker(batch, verify=True)
    assert marker == EndTxnMarker(committed, 12)
    assert marker.control_type is (ControlType.COMMIT if committed else ControlType.ABORT)


def test_a_data_batch_is_not_a_marker() -> None:
    data = build_batch(
        [(1, b"k", b"v", ())], producer_id=1, producer_epoch=0, base_sequence=0, transactional=True
    )
    assert not is_end_txn_marker(validate(data))
    with pytest.raises(InvalidRecordError, match="not a transactional control batch"):
        parse_end_txn_marker(data)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (struct.pack(">hh", 0, 5), struct.pack(">hi", 0, 1), "control type 5"),
        (struct.pack(">hh", 1, 0), struct.pack(">hi", 0, 1), "key version 1"),
        (b"\x00", struct.pack(">hi", 0, 1), "too short"),
        (struct.pack(">hh", 0, 0), None, "value is missing"),
        (struct.pack(">hh", 0, 0), struct.pack(">hi", 3, 1), "value version 3"),
    ],
)
def test_malformed_markers_are_refused(key: bytes, value: bytes | None, message: str) -> None:
    batch = build_batch(
        [(1, key, value, ())], producer_id=1, producer_epoch=0, transactional=True, control=True
    )
    with pytest.raises(InvalidRecordError, match=message):
        parse_end_txn_marker(batch)


def test_marker_without_producer_is_refused() -> None:
    with pytest.raises(ValueError, match="producer id"):
        build_end_txn_marker(-1, 0, True, 0, timestamp=0)
