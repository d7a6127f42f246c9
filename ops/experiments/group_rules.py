"""Checks what a consumer group read against the log it read from.

The group workload's guarantees (at-least-once with committed offsets, KIP-848 ownership):

* **No skip**: every record of a partition, from where the group first started reading it up
  to where the group's reading ended, was returned to some member.
* **No rewind**: a member that takes a partition starts at or after the newest offset the
  group had committed for it when the member took it, so a zombie cannot move a group back.
* **Duplicates only in the re-read window**: a member never returns one record twice while it
  owns the partition; a record returned again by a later owner lies in that owner's re-read
  window (from its start, the last commit, up to what the previous owner had returned). The
  checker counts these re-reads.
* **One owner per epoch**: no two members read one partition with the same member epoch (the
  coordinator gives a partition to a new owner only at a newer epoch, after the old owner
  released it).
* **Faithful values**: what a member read at an offset is what the final log holds there.

:func:`check_group` takes every member's events and the final content of each partition
(offset -> value, read after the faults healed) and returns the anomalies plus tallies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from raftka.client.types import TopicPartition
from raftka.ops.experiments.group_history import GroupEvent, GroupEventKind, by_member


class GroupAnomalyKind(Enum):
    SKIPPED = "skipped"
    REWOUND = "rewound"
    DUPLICATE_IN_SESSION = "duplicate_in_session"
    TWO_OWNERS_ONE_EPOCH = "two_owners_one_epoch"
    VALUE_MISMATCH = "value_mismatch"


@dataclass(frozen=True, slots=True)
class GroupAnomaly:
    kind: GroupAnomalyKind
    partition: TopicPartition
    offsets: tuple[int, ...]
    explanation: str


@dataclass(frozen=True, slots=True)
class GroupCheckResult:
    anomalies: tuple[GroupAnomaly, ...]
    consumed: int
    """Records returned to members, counting re-reads."""
    re_read: int
    """Records returned again by a later owner (inside its re-read window)."""
    sessions: int
    """Ownership sessions: one member owning one partition from assignment to revocation."""

    @property
    def valid(self) -> bool:
        return not self.anomalies

    def of_kind(self, kind: GroupAnomalyKind) -> tuple[GroupAnomaly, ...]:
        return tuple(a for a in self.anomalies if a.kind is kind)


@dataclass(slots=True)
class _Session:
    """One member owning one partition: where it started, what it returned."""

    member: str
    partition: TopicPartition
    start: int
    assigned_at: float
    offsets: list[int] = field(default_factory=list)


def check_group(
    events: Iterable[GroupEvent], final_logs: Mapping[TopicPartition, Mapping[int, str]]
) -> GroupCheckResult:
    events = list(events)
    anomalies: list[GroupAnomaly] = []
    sessions = _sessions(events, anomalies)
    commits = sorted(
        (e.time, tp, pos)
        for e in events
        if e.kind is GroupEventKind.COMMITTED
        for tp, pos in e.positions.items()
    )
    consumed = re_read = 0
    for tp, log in final_logs.items():
        mine = sorted((s for s in sessions if s.partition == tp), key=lambda s: s.assigned_at)
        anomalies += _rewinds(tp, mine, commits)
        n, again, skipped = _coverage(tp, mine, log)
        consumed += n
        re_read += again
        anomalies += skipped
    anomalies += _owners_per_epoch(events)
    anomalies += value_mismatches(events, final_logs)
    return GroupCheckResult(tuple(anomalies), consumed, re_read, len(sessions))


def _sessions(events: list[GroupEvent], anomalies: list[GroupAnomaly]) -> list[_Session]:
    done: list[_Session] = []
    for member, own in by_member(events):
        open_: dict[TopicPartition, _Session] = {}
        for e in own:
            if e.kind is GroupEventKind.ASSIGNED:
                for tp in e.partitions:
                    if tp in open_:
                        done.append(open_.pop(tp))
                    open_[tp] = _Session(member, tp, e.positions.get(tp, 0), e.time)
            elif e.kind is GroupEventKind.REVOKED:
                for tp in e.partitions:
                    if tp in open_:
                        done.append(open_.pop(tp))
            elif e.kind is GroupEventKind.CONSUMED and e.partitions:
                session = open_.get(e.partitions[0])
                if session is None:
                    continue  # read after it gave the partition up: counted by values only
                seen = set(session.offsets)
                twice = sorted({o for o, _ in e.records if o in seen})
                if twice:
                    anomalies.append(
                        GroupAnomaly(
                            GroupAnomalyKind.DUPLICATE_IN_SESSION,
                            session.partition,
                            tuple(twice),
                            f"{member} returned offsets {twice} of {session.partition} twice "
                            "while it owned the partition",
                        )
                    )
                session.offsets += [o for o, _ in e.records]
        done += open_.values()
    return done


def _rewinds(
    tp: TopicPartition,
    sessions: list[_Session],
    commits: list[tuple[float, TopicPartition, int]],
) -> list[GroupAnomaly]:
    found = []
    for s in sessions:
        before = [pos for t, p, pos in commits if p == tp and t < s.assigned_at]
        if before and s.start < max(before):
            found.append(
                GroupAnomaly(
                    GroupAnomalyKind.REWOUND,
                    tp,
                    (s.start, max(before)),
                    f"{s.member} started {tp} at {s.start}, behind offset {max(before)} "
                    "which the group had committed before it took the partition",
                )
            )
    return found


def _coverage(
    tp: TopicPartition, sessions: list[_Session], log: Mapping[int, str]
) -> tuple[int, int, list[GroupAnomaly]]:
    """Counts reads and re-reads; finds log offsets no member returned between the group's
    first start and the furthest offset it returned."""
    if not sessions:
        return 0, 0, []
    read = [o for s in sessions for o in s.offsets]
    seen = set(read)
    start = min(s.start for s in sessions)
    end = max(seen, default=start - 1)
    missing = tuple(o for o in sorted(log) if start <= o <= end and o not in seen)
    anomalies = []
    if missing:
        anomalies.append(
            GroupAnomaly(
                GroupAnomalyKind.SKIPPED,
                tp,
                missing,
                f"{len(missing)} record(s) of {tp} between offsets {start} and {end} were "
                f"returned to no member (first: {missing[:5]})",
            )
        )
    return len(read), len(read) - len(seen), anomalies


def _owners_per_epoch(events: list[GroupEvent]) -> list[GroupAnomaly]:
    owners: dict[tuple[TopicPartition, int], set[str]] = {}
    for e in events:
        if e.kind is GroupEventKind.CONSUMED and e.partitions and e.member_epoch >= 0:
            owners.setdefault((e.partitions[0], e.member_epoch), set()).add(e.member)
    return [
        GroupAnomaly(
            GroupAnomalyKind.TWO_OWNERS_ONE_EPOCH,
            tp,
            (),
            f"members {sorted(members)} all read {tp} at member epoch {epoch}",
        )
        for (tp, epoch), members in sorted(owners.items(), key=lambda kv: (str(kv[0][0]), kv[0][1]))
        if len(members) > 1
    ]


def value_mismatches(
    events: Iterable[GroupEvent], final_logs: Mapping[TopicPartition, Mapping[int, str]]
) -> list[GroupAnomaly]:
    """Reads whose value differs from what the final log holds at that offset."""
    found = []
    for e in events:
        if e.kind is not GroupEventKind.CONSUMED or not e.partitions:
            continue
        tp = e.partitions[0]
        log = final_logs.get(tp, {})
        wrong = tuple(o for o, v in e.records if log.get(o) != v)
        if wrong:
            found.append(
                GroupAnomaly(
                    GroupAnomalyKind.VALUE_MISMATCH,
                    tp,
                    wrong,
                    f"{e.member} read values at offsets {wrong[:5]} of {tp} that the final "
                    "log does not hold there (changed or lost)",
                )
            )
    return found
