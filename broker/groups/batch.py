"""The records one call writes: each is encoded, decoded and applied exactly as a replay would
apply it, so the live state and a replayed one never differ."""

from __future__ import annotations

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.records import GroupRecord, decode, encode
from raftka.broker.groups.store import GroupStore


class RecordBatch:
    __slots__ = ("records", "store")

    def __init__(self, store: GroupStore) -> None:
        self.store = store
        self.records: list[StoredRecord] = []

    def write(self, record: GroupRecord) -> None:
        stored = encode(record)
        self.store.apply(decode(stored))
        self.records.append(stored)
