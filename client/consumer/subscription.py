"""Which partitions the consumer reads and where it is in each (Kafka's SubscriptionState).

Pure state, no I/O. A partition's *position* is the offset of the next record poll() will
return; it moves only when poll() hands records out, or by seek. A partition without a
position is either *initializing* (just assigned: committed offset or reset policy still to
apply), *awaiting a reset* (seek_to_beginning / seek_to_end / the reset policy: a ListOffsets
lookup is due), or *failed* (an error poll() raises until the application seeks).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from raftka.client.consumer.config import OffsetResetPolicy
from raftka.client.consumer.errors import IllegalStateError, NoOffsetForPartitionError
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError


class ResetStrategy(enum.IntEnum):
    """The ListOffsets timestamp each strategy looks up."""

    EARLIEST = -2
    LATEST = -1


@dataclass(slots=True)
class AssignedPartition:
    position: int | None = None
    reset: ResetStrategy | None = None
    initializing: bool = True
    error: RaftkaError | None = None
    version: int = 0
    """Bumped on every seek, reset and error: a lookup or fetch started before is stale."""
    leader_epoch: int | None = None
    """The leader epoch of the record just before the position (the last one returned); None
    when unknown (after a seek or reset). Sent as the fetch's last_fetched_epoch, so the leader
    can tell the consumer that an unclean election truncated records it read."""
    high_watermark: int = -1
    log_start_offset: int = -1
    held: bool = False
    """Newly assigned and its on_assign callback has not returned yet: not fetched, and
    nothing of it is returned by poll() (the callback may still seek it)."""

    @property
    def fetchable(self) -> bool:
        return (
            self.position is not None
            and self.reset is None
            and self.error is None
            and not self.held
        )


class SubscriptionState:
    def __init__(self, reset_policy: OffsetResetPolicy) -> None:
        self.reset_policy = reset_policy
        self._partitions: dict[TopicPartition, AssignedPartition] = {}

    # ------------------------------------------------------------------ assignment

    def assign(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Replace the assignment; partitions kept keep their position. Returns the removed
        partitions."""
        wanted = list(dict.fromkeys(partitions))
        for tp in wanted:
            if not isinstance(tp, tuple) or len(tp) != 2:
                raise IllegalStateError(
                    f"assign() takes TopicPartition(topic, partition)s, not {tp!r}"
                )
            topic, partition = tp
            if not isinstance(topic, str) or not topic:
                raise IllegalStateError(f"{tp!r}: the topic must be a non-empty string")
            if not isinstance(partition, int) or partition < 0:
                raise IllegalStateError(f"{tp!r}: the partition must be an integer >= 0")
        keep = {TopicPartition(*tp) for tp in wanted}
        removed = set(self._partitions) - keep
        self._partitions = {
            tp: self._partitions.get(tp) or AssignedPartition() for tp in sorted(keep)
        }
        return removed

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._partitions)

    def partitions(self) -> list[TopicPartition]:
        return list(self._partitions)

    def is_assigned(self, tp: TopicPartition) -> bool:
        return tp in self._partitions

    def state(self, tp: TopicPartition) -> AssignedPartition:
        state = self._partitions.get(tp)
        if state is None:
            raise IllegalStateError(
                f"{tp} is not assigned to this consumer: assign() it first "
                f"(assigned: {', '.join(str(p) for p in self._partitions) or 'none'})"
            )
        return state

    # ------------------------------------------------------------------ positions

    def seek(self, tp: TopicPartition, offset: int, leader_epoch: int | None = None) -> None:
        """Move the position to ``offset``; ``leader_epoch`` is that of the record before it,
        when known."""
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise IllegalStateError(f"seek({tp}, {offset!r}): the offset must be an integer >= 0")
        state = self.state(tp)
        state.position, state.reset, state.error = offset, None, None
        state.leader_epoch = leader_epoch
        state.initializing = False
        state.version += 1

    def request_reset(self, tp: TopicPartition, strategy: ResetStrategy) -> None:
        state = self.state(tp)
        state.position, state.reset, state.error = None, strategy, None
        state.leader_epoch = None
        state.initializing = False
        state.version += 1

    def apply_reset_policy(self, tp: TopicPartition) -> None:
        """No usable position: start where ``auto_offset_reset`` says, or fail."""
        if self.reset_policy == "none":
            self.fail(tp, NoOffsetForPartitionError([tp]))
        else:
            strategy = (
                ResetStrategy.EARLIEST if self.reset_policy == "earliest" else ResetStrategy.LATEST
            )
            self.request_reset(tp, strategy)

    def fail(self, tp: TopicPartition, error: RaftkaError) -> None:
        """poll() raises ``error`` until the application seeks the partition."""
        state = self.state(tp)
        state.position, state.reset, state.error = state.position, None, error
        state.initializing = False
        state.version += 1

    def advance(self, tp: TopicPartition, offset: int, leader_epoch: int | None) -> None:
        """poll() handed out records up to ``offset`` (exclusive)."""
        state = self.state(tp)
        state.position = offset
        if leader_epoch is not None:
            state.leader_epoch = leader_epoch

    # ------------------------------------------------------------------ queries

    def initializing(self) -> list[TopicPartition]:
        return [tp for tp, s in self._partitions.items() if s.initializing]

    def awaiting_reset(self) -> dict[TopicPartition, ResetStrategy]:
        return {tp: s.reset for tp, s in self._partitions.items() if s.reset is not None}

    def hold(self, partitions: Iterable[TopicPartition], held: bool) -> None:
        """Hold (or release) assigned partitions: see :attr:`AssignedPartition.held`."""
        for tp in partitions:
            state = self._partitions.get(tp)
            if state is not None:
                state.held = held

    def fetchable(self) -> list[TopicPartition]:
        return [tp for tp, s in self._partitions.items() if s.fetchable]

    def first_error(self) -> RaftkaError | None:
        errors = [s.error for s in self._partitions.values() if s.error is not None]
        if not errors:
            return None
        no_offset = [e for e in errors if isinstance(e, NoOffsetForPartitionError)]
        if len(no_offset) > 1:  # one error naming every partition without a position
            return NoOffsetForPartitionError([tp for e in no_offset for tp in e.partitions])
        return errors[0]
