"""The ordering rules, all reported as OUT_OF_ORDER:

* producer order: a producer's acknowledged sends to one partition must sit in the log in the
  order they happened (``a`` completed before ``b`` was invoked, so ``a`` is read before ``b``);
* nonmonotonic poll: a poll (or the final read) returns offsets that do not increase, or an
  offset below the one it fetched from;
* poll skip: a consumer reads a partition sequentially, so a poll that jumps over offsets the
  final read holds, between the consumer's position and what it returned, skips records;
  reported when the consumer never reads the skipped values at all. A poll that starts below
  the consumer's position (a rewind) is allowed; one that starts above it skips what is between.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import pairwise

from raftka.common.ids import Offset
from raftka.ops.experiments.history import Operation, OpKind, Outcome
from raftka.ops.experiments.result import Anomaly, AnomalyKind
from raftka.ops.experiments.views import PartitionHistory


def producer_order(view: PartitionHistory) -> list[Anomaly]:
    """One anomaly per acknowledged send ``b`` that the log places before some earlier
    acknowledged send ``a`` of the same producer. O(n log n): sweeping ``b`` in invoke order
    while folding in every ``a`` that completed before it, keeping the one placed last."""
    by_process: dict[int, list[tuple[Operation, Offset]]] = {}
    for send in view.sends:
        if send.outcome is not Outcome.OK:
            continue
        assert send.value is not None
        position = view.position(send.value)
        if position is not None:
            by_process.setdefault(send.process, []).append((send, position))
    found = []
    for process, sends in sorted(by_process.items()):
        completed = sorted(sends, key=lambda s: s[0].complete_time)
        latest: tuple[Operation, Offset] | None = None
        folded = 0
        for b, b_position in sorted(sends, key=lambda s: s[0].invoke_time):
            while folded < len(completed) and completed[folded][0].complete_time < b.invoke_time:
                if latest is None or completed[folded][1] > latest[1]:
                    latest = completed[folded]
                folded += 1
            if latest is None or latest[1] < b_position:
                continue
            a, a_position = latest
            assert a.value is not None and b.value is not None
            found.append(
                Anomaly(
                    AnomalyKind.OUT_OF_ORDER,
                    view.partition,
                    (a.value, b.value),
                    (a_position, b_position),
                    f"producer order: process {process} had {a.value!r} acknowledged before "
                    f"sending {b.value!r}, but {view.partition} holds {a.value!r} at offset "
                    f"{a_position}, after {b.value!r} at offset {b_position}",
                    process,
                )
            )
    return found


def nonmonotonic_reads(view: PartitionHistory) -> list[Anomaly]:
    """One anomaly per poll or final read whose offsets do not strictly increase from where it
    started (a poll's ``from_offset``, a final read's 0), naming the first offending pair."""
    found = []
    for op in (*view.polls, *view.final_reads):
        problem = _first_backward(op)
        if problem is None:
            continue
        offsets, values, text = problem
        what = "poll" if op.kind is OpKind.POLL else "final read"
        found.append(
            Anomaly(
                AnomalyKind.OUT_OF_ORDER,
                view.partition,
                values,
                offsets,
                f"nonmonotonic poll: process {op.process}'s {what} of {view.partition} "
                f"(completed at {op.complete_time}) {text}",
                op.process,
            )
        )
    return found


def poll_skips(view: PartitionHistory) -> list[Anomaly]:
    """One anomaly per poll that skips offsets the final read holds and the same consumer never
    reads. Counting by bisection keeps a clean poll O(log n)."""
    if view.final is None:
        return []
    log = sorted(view.final_values)
    in_log = view.final_values.keys()
    by_process: dict[int, list[Operation]] = {}
    for poll in view.polls:
        by_process.setdefault(poll.process, []).append(poll)
    found = []
    for polls in by_process.values():
        ever_read = {r.value for poll in polls for r in poll.records}
        position: int | None = None
        for poll in sorted(polls, key=lambda p: p.invoke_time):
            assert poll.from_offset is not None
            if _first_backward(poll) is not None:
                position = None  # reported as nonmonotonic; where the consumer stands is unknown
                continue
            start = poll.from_offset
            if position is not None and position < start:
                start = Offset(position)
            end = poll.records[-1].offset if poll.records else poll.from_offset - 1
            position = end + 1 if poll.records else poll.from_offset
            low, high = bisect_left(log, start), bisect_right(log, end)
            returned = {r.offset for r in poll.records}
            if high - low == sum(1 for o in returned if o in in_log):
                continue
            skipped = [
                o
                for o in log[low:high]
                if o not in returned and view.final_values[o] not in ever_read
            ]
            if skipped:
                found.append(_skip(view, poll, start, skipped))
    return found


def _skip(
    view: PartitionHistory, poll: Operation, start: int, skipped: Sequence[Offset]
) -> Anomaly:
    values = tuple(view.final_values[o] for o in skipped)
    got = (
        f"offsets {poll.records[0].offset}..{poll.records[-1].offset}"
        if poll.records
        else "nothing"
    )
    shown = ", ".join(f"{o} ({v!r})" for o, v in zip(skipped[:5], values, strict=False))
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    was_at = f", at offset {start}," if start != poll.from_offset else ""
    return Anomaly(
        AnomalyKind.OUT_OF_ORDER,
        view.partition,
        values,
        tuple(skipped),
        f"poll skip: process {poll.process}{was_at} polled {view.partition} from offset "
        f"{poll.from_offset} and got {got}, skipping offset {shown}{more}, which it never reads",
        poll.process,
    )


def _first_backward(
    op: Operation,
) -> tuple[tuple[Offset, ...], tuple[str, ...], str] | None:
    """The first record of a read that does not move forward, as (offsets, values, text)."""
    floor = op.from_offset if op.from_offset is not None else 0
    records = op.records
    if records and records[0].offset < floor:
        first = records[0]
        return (
            (first.offset,),
            (first.value,),
            f"returned offset {first.offset} ({first.value!r}) below its from_offset {floor}",
        )
    for before, after in pairwise(records):
        if after.offset <= before.offset:
            return (
                (before.offset, after.offset),
                (before.value, after.value),
                f"returned offset {after.offset} ({after.value!r}) after offset "
                f"{before.offset} ({before.value!r})",
            )
    return None
