"""The consumer-group checker finds each anomaly it names, and passes a clean handover."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.client.types import TopicPartition
from raftka.ops.experiments.group_history import (
    GroupEvent,
    GroupEventKind,
    GroupEventLog,
    load_events,
)
from raftka.ops.experiments.group_rules import GroupAnomalyKind, check_group

TP = TopicPartition("t", 0)
LOG = {o: f"v{o}" for o in range(10)}
K = GroupEventKind


def assigned(member: str, epoch: int, t: float, start: int) -> GroupEvent:
    return GroupEvent(K.ASSIGNED, member, epoch, t, (TP,), {TP: start})


def revoked(member: str, epoch: int, t: float) -> GroupEvent:
    return GroupEvent(K.REVOKED, member, epoch, t, (TP,))


def consumed(member: str, epoch: int, t: float, offsets: range | list[int]) -> GroupEvent:
    return GroupEvent(
        K.CONSUMED, member, epoch, t, (TP,), records=tuple((o, f"v{o}") for o in offsets)
    )


def committed(member: str, epoch: int, t: float, position: int) -> GroupEvent:
    return GroupEvent(K.COMMITTED, member, epoch, t, positions={TP: position})


def test_a_handover_with_a_re_read_window_is_clean() -> None:
    events = [
        assigned("a#0", 1, 1.0, 0),
        consumed("a#0", 1, 1.1, range(0, 6)),
        committed("a#0", 1, 1.2, 4),
        # a#0 dies having returned 0..5 but committed only 4: b re-reads 4 and 5.
        assigned("b#0", 2, 2.0, 4),
        consumed("b#0", 2, 2.1, range(4, 10)),
    ]
    result = check_group(events, {TP: LOG})
    assert result.valid, result.anomalies
    assert (result.consumed, result.re_read, result.sessions) == (12, 2, 2)


def test_a_record_no_member_returned_is_a_skip() -> None:
    events = [
        assigned("a#0", 1, 1.0, 0),
        consumed("a#0", 1, 1.1, range(0, 4)),
        revoked("a#0", 1, 1.5),
        assigned("b#0", 2, 2.0, 6),
        consumed("b#0", 2, 2.1, range(6, 10)),
    ]
    (skip,) = check_group(events, {TP: LOG}).anomalies
    assert skip.kind is GroupAnomalyKind.SKIPPED and skip.offsets == (4, 5)


def test_starting_behind_a_commit_is_a_rewind() -> None:
    events = [
        assigned("a#0", 1, 1.0, 0),
        consumed("a#0", 1, 1.1, range(0, 8)),
        committed("a#0", 1, 1.2, 8),
        revoked("a#0", 1, 1.3),
        assigned("b#0", 2, 2.0, 3),
        consumed("b#0", 2, 2.1, range(3, 10)),
    ]
    kinds = {a.kind for a in check_group(events, {TP: LOG}).anomalies}
    assert kinds == {GroupAnomalyKind.REWOUND}


def test_reading_a_record_twice_in_one_session_is_a_duplicate() -> None:
    events = [
        assigned("a#0", 1, 1.0, 0),
        consumed("a#0", 1, 1.1, range(0, 5)),
        consumed("a#0", 1, 1.2, range(3, 10)),
    ]
    (dup,) = check_group(events, {TP: LOG}).anomalies
    assert dup.kind is GroupAnomalyKind.DUPLICATE_IN_SESSION and dup.offsets == (3, 4)


def test_two_members_reading_at_one_epoch_are_two_owners() -> None:
    events = [
        assigned("a#0", 3, 1.0, 0),
        consumed("a#0", 3, 1.1, range(0, 5)),
        assigned("b#0", 3, 1.0, 5),
        consumed("b#0", 3, 1.2, range(5, 10)),
    ]
    (two,) = check_group(events, {TP: LOG}).anomalies
    assert two.kind is GroupAnomalyKind.TWO_OWNERS_ONE_EPOCH


def test_a_value_the_log_does_not_hold_is_a_mismatch() -> None:
    events = [
        assigned("a#0", 1, 1.0, 0),
        GroupEvent(K.CONSUMED, "a#0", 1, 1.1, (TP,), records=((0, "v0"), (1, "forged"))),
        consumed("a#0", 1, 1.2, range(2, 10)),
    ]
    (bad,) = check_group(events, {TP: LOG}).anomalies
    assert bad.kind is GroupAnomalyKind.VALUE_MISMATCH and bad.offsets == (1,)


def test_event_files_round_trip_and_a_cut_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    log = GroupEventLog(path)
    written = [assigned("a#0", 1, 1.0, 0), consumed("a#0", 1, 1.1, range(0, 3))]
    for event in written:
        log.write(event)
    log.close()
    with path.open("a") as f:
        f.write('{"kind": "consu')  # what a SIGKILL mid-write leaves
    assert load_events([path]) == written


def test_a_bad_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"kind": "nope"}\n' + '{"kind": "x"}\n')
    with pytest.raises(ValueError, match=r"a\.jsonl:1: not a group event"):
        load_events([path])
