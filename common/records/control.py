"""End-transaction markers: the control batches that close a transaction on a partition.

A marker is a v2 batch with attributes transactional|control (0x30), the producer id and the
marker's producer epoch, base sequence -1, and one record (KIP-98's control record layout):

- key: int16 version (0) + int16 control type (0 ABORT, 1 COMMIT);
- value: int16 version (0) + int32 coordinator epoch.

The partition leader writes one when the transaction coordinator tells it the outcome; every
replica reads it back (follower appends, replay on load) to close the producer's transaction.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from raftka.common.records.batch import (
    NO_PARTITION_LEADER_EPOCH,
    NO_SEQUENCE,
    BatchHeader,
    Buffer,
)
from raftka.common.records.builder import build_batch
from raftka.common.records.decoder import decode_batch
from raftka.common.records.errors import InvalidRecordError

CONTROL_RECORD_VERSION = 0
_KEY = struct.Struct(">hh")  # version, type
_VALUE = struct.Struct(">hi")  # version, coordinator epoch


class ControlType(enum.IntEnum):
    """The control record's type (its key's second int16)."""

    ABORT = 0
    COMMIT = 1


@dataclass(frozen=True, slots=True)
class EndTxnMarker:
    """What a marker says: the transaction's outcome and the coordinator epoch that wrote it."""

    committed: bool
    coordinator_epoch: int

    @property
    def control_type(self) -> ControlType:
        return ControlType.COMMIT if self.committed else ControlType.ABORT


def build_end_txn_marker(
    producer_id: int,
    producer_epoch: int,
    committed: bool,
    coordinator_epoch: int,
    *,
    timestamp: int,
    base_offset: int = 0,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
) -> bytearray:
    """The marker batch (offset and leader epoch are rewritten by the append as usual)."""
    if producer_id < 0 or producer_epoch < 0:
        raise ValueError(
            f"a marker needs a producer id and epoch, got {producer_id} / {producer_epoch}"
        )
    marker = EndTxnMarker(committed, coordinator_epoch)
    key = _KEY.pack(CONTROL_RECORD_VERSION, marker.control_type)
    value = _VALUE.pack(CONTROL_RECORD_VERSION, coordinator_epoch)
    return build_batch(
        [(timestamp, key, value, ())],
        base_offset=base_offset,
        partition_leader_epoch=partition_leader_epoch,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=NO_SEQUENCE,
        transactional=True,
        control=True,
    )


def is_end_txn_marker(header: BatchHeader) -> bool:
    """Whether the batch is a transaction marker by its header (control and transactional)."""
    return header.is_control and header.is_transactional


def parse_end_txn_marker(batch: Buffer, pos: int = 0, *, verify: bool = False) -> EndTxnMarker:
    """The marker of the control batch at ``pos``; InvalidRecordError when it is not a
    well-formed end-transaction marker (another control type, a bad version or size)."""
    decoded = decode_batch(batch, pos, verify=verify)
    header = decoded.header
    where = f"control batch at offset {header.base_offset}"
    if not is_end_txn_marker(header):
        raise InvalidRecordError(f"{where}: not a transactional control batch")
    if len(decoded.records) != 1:
        raise InvalidRecordError(f"{where}: {len(decoded.records)} records, a marker has one")
    record = decoded.records[0]
    if record.key is None or len(record.key) < _KEY.size:
        raise InvalidRecordError(f"{where}: control record key is missing or too short")
    version, kind = _KEY.unpack_from(record.key)
    if version != CONTROL_RECORD_VERSION:
        raise InvalidRecordError(f"{where}: control record key version {version} is unknown")
    if kind not in (ControlType.ABORT, ControlType.COMMIT):
        raise InvalidRecordError(f"{where}: control type {kind} is not a transaction marker")
    if record.value is None or len(record.value) < _VALUE.size:
        raise InvalidRecordError(f"{where}: marker value is missing or too short")
    value_version, coordinator_epoch = _VALUE.unpack_from(record.value)
    if value_version != CONTROL_RECORD_VERSION:
        raise InvalidRecordError(f"{where}: marker value version {value_version} is unknown")
    return EndTxnMarker(kind == ControlType.COMMIT, coordinator_epoch)
