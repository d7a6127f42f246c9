"""The __transaction_state record format: versioned deterministic keys, round trips, refusals."""

from __future__ import annotations

import pytest

from raftka.broker.transactions.api import StoredRecord
from raftka.broker.transactions.records import TxnRecord, TxnRecordError, decode, encode
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.broker.transactions.store import TxnStore
from raftka.v1 import txn_records_pb2 as rpb

FULL = TransactionMetadata(
    producer_id=42,
    producer_epoch=7,
    state=TxnState.PREPARE_COMMIT,
    timeout_ms=30_000,
    partitions=frozenset({("b", 3), ("a", 1), ("a", 0), ("b", 0)}),
    start_time_ms=111,
    last_update_ms=222,
    last_producer_epoch=6,
    previous_producer_id=41,
    next_producer_id=43,
)


@pytest.mark.parametrize("state", list(TxnState), ids=lambda s: s.name)
def test_round_trip_of_every_state(state: TxnState) -> None:
    record = TxnRecord("t-1", FULL.evolve(state=state))
    assert decode(encode(record)) == record


def test_round_trip_of_a_tombstone_and_of_defaults() -> None:
    assert decode(encode(TxnRecord("t", None))) == TxnRecord("t", None)
    plain = TransactionMetadata(producer_id=1, producer_epoch=0, state=TxnState.EMPTY, timeout_ms=5)
    assert decode(encode(TxnRecord("t", plain))) == TxnRecord("t", plain)


def test_key_is_version_0_then_the_deterministic_key_and_one_per_id() -> None:
    a = encode(TxnRecord("tx", FULL))
    b = encode(TxnRecord("tx", None))
    c = encode(TxnRecord("ty", FULL))
    assert a.key == b.key != c.key
    expected = rpb.TransactionLogKey(transactional_id="tx").SerializeToString(deterministic=True)
    assert a.key == b"\x00\x00" + expected


def test_value_lists_topics_and_partitions_sorted() -> None:
    value = rpb.TransactionLogValue()
    value.ParseFromString(encode(TxnRecord("t", FULL)).value or b"")
    assert [(item.topic, list(item.partitions)) for item in value.partitions] == [
        ("a", [0, 1]),
        ("b", [0, 3]),
    ]
    # The same state built from partitions given in another order: the same bytes.
    other = FULL.evolve(partitions=frozenset([("b", 0), ("a", 0), ("b", 3), ("a", 1)]))
    assert encode(TxnRecord("t", other)) == encode(TxnRecord("t", FULL))


@pytest.mark.parametrize(
    ("stored", "words"),
    [
        (StoredRecord(b"\x00", None), "too short"),
        (StoredRecord(b"\x00\x01\n\x01t", None), "version 1"),
        (StoredRecord(b"\x00\x00\xff\xff", None), "undecodable key"),
        (StoredRecord(b"\x00\x00\n\x01t", b"\xff\xff\xff"), "undecodable value"),
        (
            StoredRecord(
                b"\x00\x00\n\x01t",
                rpb.TransactionLogValue(state=99).SerializeToString(),  # type: ignore[arg-type]
            ),
            "unknown state 99",
        ),
    ],
)
def test_unreadable_records_are_refused(stored: StoredRecord, words: str) -> None:
    with pytest.raises(TxnRecordError, match=words):
        decode(stored)


def test_a_dead_value_and_a_tombstone_both_forget_the_id() -> None:
    store = TxnStore()
    store.apply(TxnRecord("t", FULL))
    store.apply(TxnRecord("t", FULL.evolve(state=TxnState.DEAD)))
    assert store.get("t") is None
    store.apply(TxnRecord("t", FULL))
    store.apply(TxnRecord("t", None))
    assert store.ids == {}
