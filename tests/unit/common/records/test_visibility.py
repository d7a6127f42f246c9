"""The read_committed record filter: control batches never show, aborted transactions' batches
do not under read_committed, and everything else shows in offset order."""

from __future__ import annotations

from raftka.common.records import build_batch
from raftka.common.records.control import build_end_txn_marker
from raftka.common.records.visibility import batches_end_offset, visible_records


def data(offset: int, values: list[bytes], *, producer_id: int = -1) -> bytes:
    """A batch at ``offset``: transactional when it has a producer id."""
    transactional = producer_id >= 0
    return bytes(
        build_batch(
            [(1_000 + i, None, v, ()) for i, v in enumerate(values)],
            base_offset=offset,
            producer_id=producer_id,
            producer_epoch=0 if transactional else -1,
            base_sequence=0 if transactional else -1,
            transactional=transactional,
        )
    )


def marker(offset: int, producer_id: int, *, committed: bool) -> bytes:
    return bytes(
        build_end_txn_marker(producer_id, 1, committed, 0, timestamp=1, base_offset=offset)
    )


def values(buf: bytes, aborted: list[tuple[int, int]]) -> list[tuple[int, bytes | None]]:
    return [(r.offset, r.value) for r in visible_records(buf, aborted)]


# The log: 0-1 plain; 2 txn of 7 (aborted); 3 txn of 8 (committed); 4 plain; 5 ABORT(7);
# 6 COMMIT(8); 7 txn of 7 again (a later transaction, committed); 8 COMMIT(7).
LOG = (
    data(0, [b"a", b"b"])
    + data(2, [b"aborted"], producer_id=7)
    + data(3, [b"committed"], producer_id=8)
    + data(4, [b"c"])
    + marker(5, 7, committed=False)
    + marker(6, 8, committed=True)
    + data(7, [b"later"], producer_id=7)
    + marker(8, 7, committed=True)
)


def test_read_uncommitted_drops_only_control_records() -> None:
    assert values(LOG, []) == [
        (0, b"a"),
        (1, b"b"),
        (2, b"aborted"),
        (3, b"committed"),
        (4, b"c"),
        (7, b"later"),
    ]


def test_read_committed_drops_the_aborted_transaction_until_its_abort_marker() -> None:
    # The producer's next transaction (offset 7, after its ABORT marker) is visible again.
    assert values(LOG, [(7, 2)]) == [
        (0, b"a"),
        (1, b"b"),
        (3, b"committed"),
        (4, b"c"),
        (7, b"later"),
    ]


def test_an_aborted_transaction_starting_later_does_not_hide_earlier_batches() -> None:
    # Producer 7's transaction of offset 7 aborted (not the one at 2): only offset 7 drops.
    assert values(LOG, [(7, 7)]) == [
        (0, b"a"),
        (1, b"b"),
        (2, b"aborted"),
        (3, b"committed"),
        (4, b"c"),
    ]


def test_a_commit_marker_does_not_end_an_aborted_range() -> None:
    # Only an ABORT marker of the same producer closes its aborted range.
    log = (
        data(0, [b"x"], producer_id=7)
        + marker(1, 8, committed=True)
        + data(2, [b"y"], producer_id=7)
    )
    assert values(log, [(7, 0)]) == []


def test_batches_end_offset() -> None:
    assert batches_end_offset(b"") is None
    assert batches_end_offset(LOG) == 9
    assert batches_end_offset(data(10, [b"a", b"b", b"c"])) == 13
