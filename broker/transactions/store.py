"""All transactional ids of one shard, changed only by applying records (live writes and replay
alike), and the batch that writes records through that same path."""

from __future__ import annotations

from raftka.broker.transactions.api import StoredRecord
from raftka.broker.transactions.records import TxnRecord, decode, encode
from raftka.broker.transactions.state import TransactionMetadata, TxnState


class TxnStore:
    __slots__ = ("ids",)

    def __init__(self) -> None:
        self.ids: dict[str, TransactionMetadata] = {}

    def get(self, transactional_id: str) -> TransactionMetadata | None:
        return self.ids.get(transactional_id)

    def apply(self, record: TxnRecord) -> None:
        """The latest value of a key is the id's state; a tombstone (or a Dead value, which
        this coordinator never writes) forgets it."""
        if record.value is None or record.value.state is TxnState.DEAD:
            self.ids.pop(record.transactional_id, None)
        else:
            self.ids[record.transactional_id] = record.value


class RecordBatch:
    """The records one call writes: each is encoded, decoded and applied exactly as a replay
    would apply it, so the live state and a replayed one never differ."""

    __slots__ = ("records", "store")

    def __init__(self, store: TxnStore) -> None:
        self.store = store
        self.records: list[StoredRecord] = []

    def write(self, transactional_id: str, value: TransactionMetadata | None) -> None:
        stored = encode(TxnRecord(transactional_id, value))
        self.store.apply(decode(stored))
        self.records.append(stored)
