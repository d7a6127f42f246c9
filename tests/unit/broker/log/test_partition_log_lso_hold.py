"""PartitionLog holds the last stable offset at a completed transaction's first offset until
the high watermark passes its marker (a marker not yet committed may be lost with the leader,
reopening the transaction): on leaders and followers, across restarts and truncations."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.producers.unreplicated import HeldTxn
from raftka.common.storage.txn_index import AbortedTxn
from tests.unit.broker.log.test_partition_log_txn import ROLL_EVERY_BATCH, Producer
from tests.unit.broker.support import open_partition

A, B, C = 4000, 5000, 6000


def replicated(path: Path, overrides: Mapping[str, str] | None = None) -> PartitionLog:
    """A log whose high watermark replication drives (set_high_watermark)."""
    return open_partition(path, overrides=overrides, hw_follows_log_end=False)


def committed_data(plog: PartitionLog) -> bytes:
    """What a read_committed fetch from offset 0 returns."""
    return bytes(plog.read(0, 1 << 20, read_committed=True).records)


def held(plog: PartitionLog) -> list[HeldTxn]:
    return plog.producer_state.unreplicated_transactions


@pytest.mark.parametrize("committed", [True, False])
def test_the_lso_holds_at_the_first_offset_until_the_marker_is_committed(
    tmp_path: Path, committed: bool
) -> None:
    plog = replicated(tmp_path)
    a = Producer(plog, A)
    a.send(2)  # 0-1
    plog.set_high_watermark(2)
    assert a.end(committed) == 2
    assert plog.producer_state.open_transactions == {}
    assert (plog.first_unstable_offset, plog.last_stable_offset) == (0, 0)
    assert committed_data(plog) == b""
    plog.set_high_watermark(2)  # at the marker, not past it
    assert plog.last_stable_offset == 0
    plog.set_high_watermark(3)
    assert (plog.first_unstable_offset, plog.last_stable_offset) == (None, 3)
    assert committed_data(plog) != b""
    # the .txnindex entry was written with the marker, with the LSO as Kafka defines it
    expected = [] if committed else [AbortedTxn(A, 0, 2, 3)]
    assert plog.aborted_transactions(0, 3) == expected
    plog.close()


def test_interleaved_producers(tmp_path: Path) -> None:
    plog = replicated(tmp_path)
    a, b, c = Producer(plog, A), Producer(plog, B), Producer(plog, C)
    a.send()  # 0
    b.send()  # 1
    a.end(committed=True)  # 2
    b.send()  # 3
    plog.set_high_watermark(2)
    assert plog.last_stable_offset == 0  # A held: its marker is at the high watermark
    plog.set_high_watermark(3)
    assert plog.last_stable_offset == 1  # A released; B open at 1
    b.end(committed=False)  # 4
    c.send()  # 5
    plog.set_high_watermark(5)
    assert plog.last_stable_offset == 5  # B released; C open at 5
    assert held(plog) == []
    plog.set_high_watermark(6)
    assert plog.last_stable_offset == 5
    plog.close()


def test_the_high_watermark_passing_several_markers_at_once(tmp_path: Path) -> None:
    plog = replicated(tmp_path)
    producers = [Producer(plog, pid) for pid in (A, B, C)]
    for p in producers:
        p.send()  # 0, 1, 2
    for p in reversed(producers):
        p.end(committed=True)  # C at 3, B at 4, A at 5
    assert held(plog) == [HeldTxn(2, 3), HeldTxn(1, 4), HeldTxn(0, 5)]
    plog.set_high_watermark(4)
    assert plog.last_stable_offset == 0  # C released, A and B still held
    plog.set_high_watermark(6)
    assert (held(plog), plog.last_stable_offset) == ([], 6)
    plog.close()


def test_a_follower_holds_until_the_leaders_high_watermark_passes_the_marker(
    tmp_path: Path,
) -> None:
    leader = replicated(tmp_path / "leader", overrides=ROLL_EVERY_BATCH)
    follower = replicated(tmp_path / "follower", overrides=ROLL_EVERY_BATCH)
    a = Producer(leader, A)
    a.send(2)
    a.end(committed=False)  # 2
    offset = 0
    while offset < leader.log_end_offset:
        follower.append_as_follower(leader.read(offset, 1 << 20, max_offset=3).records)
        offset = follower.log_end_offset
    assert follower.producer_state.open_transactions == {}
    assert held(follower) == [HeldTxn(0, 2)]
    follower.set_high_watermark(2)  # the leader's, in a fetch response
    assert follower.last_stable_offset == 0
    follower.set_high_watermark(3)
    assert follower.last_stable_offset == 3
    assert follower.aborted_transactions(0, 3) == [AbortedTxn(A, 0, 2, 3)]
    leader.close()
    follower.close()


@pytest.mark.parametrize("clean", [True, False])
def test_a_restart_holds_again_what_the_recovered_high_watermark_has_not_passed(
    tmp_path: Path, clean: bool
) -> None:
    plog = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    a, b = Producer(plog, A), Producer(plog, B)
    a.send()  # 0
    a.end(committed=True)  # 1
    b.send(2)  # 2-3
    b.end(committed=True)  # 4
    a.send()  # 5: open
    plog.set_high_watermark(2)  # A's marker committed, B's not
    assert plog.last_stable_offset == 2
    if clean:
        plog.close()  # a snapshot at the log end, which knows no completed transaction
    else:
        plog.checkpoint_high_watermark()
        plog.flush()
    again = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    assert again.high_watermark == 2
    assert held(again) == [HeldTxn(2, 4)]
    assert again.producer_state.open_transactions == {A: 5}
    assert again.last_stable_offset == 2
    again.set_high_watermark(5)
    assert again.last_stable_offset == 5  # B released; A open at 5
    again.close()
    if not clean:
        plog.close()


def test_a_restart_does_not_hold_what_the_high_watermark_passed(tmp_path: Path) -> None:
    plog = replicated(tmp_path)
    a = Producer(plog, A)
    a.send()
    a.end(committed=True)
    plog.set_high_watermark(2)
    plog.close()
    again = replicated(tmp_path)
    assert (held(again), again.last_stable_offset) == ([], 2)
    again.close()


def test_a_truncated_marker_reopens_its_transaction(tmp_path: Path) -> None:
    plog = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    a, b = Producer(plog, A), Producer(plog, B)
    a.send(2)  # 0-1
    b.send()  # 2
    b.end(committed=True)  # 3
    a.end(committed=False)  # 4
    b.send()  # 5 (B's next transaction, in its new epoch)
    plog.set_high_watermark(3)
    assert held(plog) == [HeldTxn(2, 3), HeldTxn(0, 4)]
    plog.truncate_to(5)  # the markers survive: still held
    assert held(plog) == [HeldTxn(2, 3), HeldTxn(0, 4)]
    plog.truncate_to(4)  # A's abort marker goes: its transaction is open again
    assert plog.producer_state.open_transactions == {A: 0}
    assert held(plog) == [HeldTxn(2, 3)]
    assert plog.aborted_transactions(0, 4) == []
    assert plog.last_stable_offset == 0
    plog.set_high_watermark(4)
    assert (held(plog), plog.last_stable_offset) == ([], 0)  # A is open
    plog.close()


def test_a_truncation_below_the_high_watermark_holds_nothing_below_the_new_end(
    tmp_path: Path,
) -> None:
    plog = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    a = Producer(plog, A)
    a.send()  # 0
    a.end(committed=True)  # 1
    a.send()  # 2
    plog.set_high_watermark(3)
    plog.truncate_to(2, allow_below_high_watermark=True)  # an unclean leader election
    assert plog.high_watermark == 2
    assert (held(plog), plog.last_stable_offset) == ([], 2)
    plog.close()


def loaded_event(events: Sequence[MutableMapping[str, Any]]) -> MutableMapping[str, Any]:
    (event,) = [e for e in events if e["event"] == "producer_state_loaded"]
    return event


def test_a_clean_restart_replays_nothing_and_still_holds(tmp_path: Path) -> None:
    plog = replicated(tmp_path)
    a = Producer(plog, A)
    a.send()  # 0
    a.end(committed=True)  # 1
    plog.set_high_watermark(1)
    plog.close()  # the snapshot at the log end records the held transaction
    with capture_logs() as events:
        again = replicated(tmp_path)
    event = loaded_event(events)
    assert (event["snapshot_offset"], event["replayed_batches"]) == (2, 0)
    assert (held(again), again.last_stable_offset) == ([HeldTxn(0, 1)], 0)
    again.close()


def test_a_checkpoint_older_than_the_snapshots_falls_back_to_an_older_one(
    tmp_path: Path,
) -> None:
    plog = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    a, b = Producer(plog, A), Producer(plog, B)
    a.send()  # 0
    a.end(committed=True)  # 1
    plog.checkpoint_high_watermark()  # 0: the last checkpoint before the crash
    plog.set_high_watermark(2)  # A released
    b.send()  # 2: a snapshot at 2, holding nothing (from 2)
    plog.flush()
    with capture_logs() as events:
        again = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)  # a crash: no close
    assert again.high_watermark == 0
    event = loaded_event(events)
    assert event["snapshot_offset"] != 2  # it does not know A's transaction
    assert held(again) == [HeldTxn(0, 1)]
    assert again.producer_state.open_transactions == {B: 2}
    assert again.last_stable_offset == 0
    again.set_high_watermark(2)
    assert (held(again), again.first_unstable_offset) == ([], 2)
    again.close()
    plog.close()


def test_a_checkpoint_older_than_a_snapshot_keeps_it_when_no_marker_lies_in_between(
    tmp_path: Path,
) -> None:
    """A kill -9 before the high-watermark checkpoint caught up with the snapshots: a snapshot
    that forgot no marker (none lies between the recovered high watermark and the high
    watermark it was taken at) is still used, not a replay from the log start."""
    plog = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)
    b = Producer(plog, B)
    b.send()  # 0
    plog.set_high_watermark(1)
    plog.checkpoint_high_watermark()  # 1: the last checkpoint before the crash
    for _ in range(3):  # 1, 2, 3: a snapshot at every roll, taken at a higher watermark
        b.send()
        plog.set_high_watermark(plog.log_end_offset)
    plog.flush()
    with capture_logs() as events:
        again = replicated(tmp_path, overrides=ROLL_EVERY_BATCH)  # a crash: no close
    assert again.high_watermark == 1
    event = loaded_event(events)
    assert event["snapshot_offset"] == 3 and event["replayed_batches"] == 1
    assert held(again) == [] and again.producer_state.open_transactions == {B: 0}
    again.close()
    plog.close()
