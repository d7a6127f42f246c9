"""Transactional offsets waiting for their transaction's marker (TxnOffsetCommit).

A pending offset is invisible to OffsetFetch (which only reports it as undecided when asked
for stable offsets) until the COMMIT marker of its producer makes it committed; an ABORT
marker drops it. Each pending value remembers its position in the shard's record order (the
log order, for live writes and replay alike), so a COMMIT never puts back an offset older than
one committed after it: the later write in the log wins, whichever path it took.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.broker.groups.state import CommittedOffset

#: (group id, topic, partition)
OffsetKey = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class PendingOffset:
    position: int  # the record's place in the shard's record order
    value: CommittedOffset


class PendingTxnOffsets:
    """Per producer id, the offsets its open transaction wrote; indexed by group for fetch."""

    __slots__ = ("_by_group", "_by_producer", "_epochs")

    def __init__(self) -> None:
        self._by_producer: dict[int, dict[OffsetKey, PendingOffset]] = {}
        self._epochs: dict[int, int] = {}
        # group -> (topic, partition) -> producer ids with a pending offset there
        self._by_group: dict[str, dict[tuple[str, int], set[int]]] = {}

    def add(
        self, producer_id: int, producer_epoch: int, key: OffsetKey, offset: PendingOffset
    ) -> None:
        """A later write of the same transaction replaces the earlier one."""
        self._by_producer.setdefault(producer_id, {})[key] = offset
        self._epochs[producer_id] = max(producer_epoch, self._epochs.get(producer_id, -1))
        group, topic, partition = key
        self._by_group.setdefault(group, {}).setdefault((topic, partition), set()).add(producer_id)

    def epoch_of(self, producer_id: int) -> int | None:
        """The epoch of the producer's open transaction here, or None when it has none."""
        return self._epochs.get(producer_id) if producer_id in self._by_producer else None

    def take(self, producer_id: int) -> list[tuple[OffsetKey, PendingOffset]]:
        """Removes and returns the producer's pending offsets, in record order."""
        offsets = self._by_producer.pop(producer_id, {})
        self._epochs.pop(producer_id, None)
        for group, topic, partition in offsets:
            in_group = self._by_group[group]
            producers = in_group[(topic, partition)]
            producers.discard(producer_id)
            if not producers:
                del in_group[(topic, partition)]
                if not in_group:
                    del self._by_group[group]
        return sorted(offsets.items(), key=lambda item: item[1].position)

    def is_pending(self, group: str, topic: str, partition: int) -> bool:
        return (topic, partition) in self._by_group.get(group, {})

    def pending_partitions(self, group: str) -> list[tuple[str, int]]:
        return sorted(self._by_group.get(group, {}))

    def producers(self) -> list[int]:
        return sorted(self._by_producer)
