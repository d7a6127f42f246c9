"""The records of ``__transaction_state`` (proto/raftka/v1/txn_records.proto) as Python values,
and their bytes: ``encode`` for what the shard writes, ``decode`` for what it replays.

A key is a 2-byte big-endian version (0), then TransactionLogKey serialized deterministically:
one transactional id is always the same bytes, which compaction relies on. A value is
serialized deterministically too, with topics and partitions sorted, so one state is always
the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from raftka.broker.transactions.api import StoredRecord, TopicPartition
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.common.errors import RaftkaError
from raftka.v1 import txn_records_pb2 as rpb

KEY_VERSION = 0
_PREFIX = struct.Struct(">H")


class TxnRecordError(RaftkaError):
    """A __transaction_state record this coordinator cannot read (unknown key version, unknown
    state or bad bytes): the partition holds data this version does not understand; upgrade or
    inspect the log."""


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """The state of ``transactional_id`` after a change; None: the id expired (tombstone)."""

    transactional_id: str
    value: TransactionMetadata | None


def encode_key(transactional_id: str) -> bytes:
    key = rpb.TransactionLogKey(transactional_id=transactional_id)
    return _PREFIX.pack(KEY_VERSION) + key.SerializeToString(deterministic=True)


def _partitions_to_pb(partitions: Iterable[TopicPartition]) -> list[rpb.TxnLogTopicPartitions]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return [
        rpb.TxnLogTopicPartitions(topic=topic, partitions=sorted(ps))
        for topic, ps in sorted(by_topic.items())
    ]


def encode(record: TxnRecord) -> StoredRecord:
    """The bytes of one record (a tombstone when its value is None)."""
    key = encode_key(record.transactional_id)
    meta = record.value
    if meta is None:
        return StoredRecord(key, None)
    value = rpb.TransactionLogValue(
        producer_id=meta.producer_id,
        previous_producer_id=meta.previous_producer_id,
        next_producer_id=meta.next_producer_id,
        producer_epoch=meta.producer_epoch,
        last_producer_epoch=meta.last_producer_epoch,
        transaction_timeout_ms=meta.timeout_ms,
        state=int(meta.state),  # type: ignore[arg-type]
        partitions=_partitions_to_pb(meta.partitions),
        transaction_start_time_ms=meta.start_time_ms,
        last_update_time_ms=meta.last_update_ms,
    )
    return StoredRecord(key, value.SerializeToString(deterministic=True))


def _parse(message: Message, data: bytes, what: str) -> None:
    try:
        message.ParseFromString(data)
    except DecodeError as e:
        raise TxnRecordError(f"__transaction_state record: undecodable {what}: {e}") from e


def decode(stored: StoredRecord) -> TxnRecord:
    """The record of some stored bytes; TxnRecordError for an unknown version or bad bytes."""
    if len(stored.key) < _PREFIX.size:
        raise TxnRecordError(
            f"__transaction_state record key of {len(stored.key)} bytes: too short for a version"
        )
    (version,) = _PREFIX.unpack_from(stored.key)
    if version != KEY_VERSION:
        raise TxnRecordError(
            f"__transaction_state record key version {version}: this broker reads version "
            f"{KEY_VERSION} only (written by a newer version?)"
        )
    key = rpb.TransactionLogKey()
    _parse(key, stored.key[_PREFIX.size :], "key")
    if stored.value is None:
        return TxnRecord(key.transactional_id, None)
    value = rpb.TransactionLogValue()
    _parse(value, stored.value, "value")
    try:
        state = TxnState(value.state)
    except ValueError:
        raise TxnRecordError(
            f"__transaction_state record of {key.transactional_id!r}: unknown state "
            f"{value.state} (written by a newer version?)"
        ) from None
    partitions = frozenset(
        (item.topic, partition) for item in value.partitions for partition in item.partitions
    )
    return TxnRecord(
        key.transactional_id,
        TransactionMetadata(
            producer_id=value.producer_id,
            producer_epoch=value.producer_epoch,
            state=state,
            timeout_ms=value.transaction_timeout_ms,
            partitions=partitions,
            start_time_ms=value.transaction_start_time_ms,
            last_update_ms=value.last_update_time_ms,
            last_producer_epoch=value.last_producer_epoch,
            previous_producer_id=value.previous_producer_id,
            next_producer_id=value.next_producer_id,
        ),
    )
