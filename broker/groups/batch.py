"""The records one call writes: each is encoded, decoded and applied exactly as a replay would
apply it, so the live state and a replayed one never differ."""

from __future__ import annotations

import dataclasses

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.records import GroupRecord, encode
from raftka.broker.groups.store import GroupStore


class RecordBatch:
    """``producer``: (producer id, epoch) to write in that producer's transaction."""

    __slots__ = ("producer", "records", "store")

    def __init__(self, store: GroupStore, producer: tuple[int, int] | None = None) -> None:
        self.store = store
        self.producer = producer
        self.records: list[StoredRecord] = []

    def write(self, record: GroupRecord) -> None:
        stored = encode(record)
        if self.producer is not None:
            stored = dataclasses.replace(
                stored, producer_id=self.producer[0], producer_epoch=self.producer[1]
            )
        self.store.apply_stored(stored)
        self.records.append(stored)
