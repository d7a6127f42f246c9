"""What the members of a consumer group did, as the group workload records it.

Each member is an OS process running the client library's consumer in a group (see
``group_member``); it appends one JSON line per event to its own file, so a member killed with
SIGKILL loses at most the line it was writing. A *member* is a process incarnation (``"c2#1"``:
consumer 2, started for the second time), so a restarted consumer is a new member even when it
keeps its static instance id.

Events (times are ``time.monotonic()`` seconds: one system-wide clock, comparable between the
processes of one machine):

* ``ASSIGNED``: the member took partitions at ``member_epoch``; ``positions`` says where each
  starts reading (its committed offset, or where ``auto_offset_reset`` put it).
* ``REVOKED``: the member gave partitions up (after committing what it had processed).
* ``CONSUMED``: ``poll()`` returned ``records`` of one partition to the application.
* ``COMMITTED``: a commit of ``positions`` (next offset to read, per partition) that the
  coordinator acknowledged at ``time`` (commits that failed are not recorded).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from raftka.client.types import TopicPartition


class GroupEventKind(Enum):
    ASSIGNED = "assigned"
    REVOKED = "revoked"
    CONSUMED = "consumed"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class GroupEvent:
    kind: GroupEventKind
    member: str
    member_epoch: int
    time: float
    partitions: tuple[TopicPartition, ...] = ()
    """ASSIGNED / REVOKED: the partitions taken or given up."""
    positions: Mapping[TopicPartition, int] = field(default_factory=dict)
    """ASSIGNED: where each partition starts; COMMITTED: what was committed."""
    records: tuple[tuple[int, str], ...] = ()
    """CONSUMED: (offset, value) pairs of ``partitions[0]``, in the order poll returned them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "member": self.member,
            "member_epoch": self.member_epoch,
            "time": self.time,
            "partitions": [[tp.topic, tp.partition] for tp in self.partitions],
            "positions": [[tp.topic, tp.partition, pos] for tp, pos in self.positions.items()],
            "records": [list(r) for r in self.records],
        }

    @classmethod
    def from_json(cls, line: Mapping[str, Any]) -> GroupEvent:
        return cls(
            kind=GroupEventKind(line["kind"]),
            member=str(line["member"]),
            member_epoch=int(line["member_epoch"]),
            time=float(line["time"]),
            partitions=tuple(TopicPartition(str(t), int(p)) for t, p in line["partitions"]),
            positions={TopicPartition(str(t), int(p)): int(o) for t, p, o in line["positions"]},
            records=tuple((int(o), str(v)) for o, v in line["records"]),
        )


class GroupEventLog:
    """Appends a member's events to its file, one flushed JSON line each."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, event: GroupEvent) -> None:
        self._file.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def load_events(paths: Iterable[Path]) -> list[GroupEvent]:
    """Every event of every member file, each file in its own order. A last line cut short by
    a kill is skipped; any other bad line raises ValueError naming the file and line."""
    events: list[GroupEvent] = []
    for path in paths:
        lines = path.read_text(encoding="utf-8").split("\n")
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            try:
                events.append(GroupEvent.from_json(json.loads(text)))
            except (ValueError, KeyError, TypeError) as e:
                if number == len(lines):
                    break  # the last line, without its newline: a SIGKILL cut it short
                raise ValueError(f"{path}:{number}: not a group event: {e}") from e
    return events


def by_member(events: Iterable[GroupEvent]) -> Iterator[tuple[str, list[GroupEvent]]]:
    """Events grouped by member, each member's in the order it wrote them."""
    members: dict[str, list[GroupEvent]] = {}
    for event in events:
        members.setdefault(event.member, []).append(event)
    yield from members.items()
