"""The contract between a coordinator's sans-I/O shard and the generic runtime that drives it.

Both coordinators (groups over ``__consumer_offsets``, transactions over
``__transaction_state``) keep their state as keyed records of an internal, compacted topic:
a shard replays them on load, and every change returns the records to append with the answer
to give once they are committed (:class:`ShardOutcome`). What else an outcome carries (member
pushes, marker jobs) is the concrete coordinator's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One record of an internal topic as bytes: compaction keeps the latest per key."""

    key: bytes
    value: bytes | None  # None: a tombstone
    # >= 0: written in a transactional batch of this producer (the group coordinator's
    # TxnOffsetCommit), undecided until the producer's marker.
    producer_id: int = -1
    producer_epoch: int = -1


@dataclass(frozen=True, slots=True)
class StoredMarker:
    """A transaction marker (COMMIT or ABORT control batch) met while reading the log."""

    producer_id: int
    producer_epoch: int
    committed: bool


#: What loading reads from the log, in log order.
LogEntry = StoredRecord | StoredMarker


class ShardOutcome(Protocol[R_co]):
    """What a state-changing shard call returns: the records (already applied by the shard)
    and the answer to give once they are committed."""

    @property
    def response(self) -> R_co: ...

    @property
    def records(self) -> Sequence[StoredRecord]: ...


class CoordinatorShard(Protocol):
    """What the runtime itself calls on a shard (the concrete coordinator calls the rest)."""

    def replay(self, record: StoredRecord) -> None: ...

    def loaded(self, now_ms: int) -> object:
        """Loading is over (what it returns is handed to the concrete coordinator)."""
        ...

    def next_deadline_ms(self) -> int | None:
        """The earliest time a timer fires, or None; lets the runtime sleep until then."""
        ...
