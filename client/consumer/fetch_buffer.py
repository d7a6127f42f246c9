"""Fetched records waiting for poll(): per partition, in fetch order, bounded.

Prefetching: a partition is fetched again while fewer than ``partition_limit`` of its
buffered bytes are still undecoded, so the next response is on its way while the
application consumes the previous one; and nothing is fetched while the buffer holds
``total_limit`` bytes or more. Each partition therefore holds at most about two responses
(plus one in flight), and the whole buffer about ``total_limit`` plus one response per broker.

Pure state, no I/O: the fetcher adds, poll() drains, seeks clear.
"""

from __future__ import annotations

from collections import deque

from raftka.client.consumer.records import CompletedFetch, ConsumerRecord
from raftka.client.consumer.subscription import SubscriptionState
from raftka.client.types import TopicPartition


class FetchBuffer:
    def __init__(self, partition_limit: int, total_limit: int) -> None:
        self.partition_limit = partition_limit
        self.total_limit = total_limit
        self._queues: dict[TopicPartition, deque[CompletedFetch]] = {}
        self._held = 0

    @property
    def held_bytes(self) -> int:
        """Bytes of every response still referenced (decoded or not)."""
        return self._held

    def undecoded_bytes(self, tp: TopicPartition) -> int:
        return sum(f.remaining_bytes for f in self._queues.get(tp, ()))

    def has_room(self, tp: TopicPartition) -> bool:
        return self._held < self.total_limit and self.undecoded_bytes(tp) < self.partition_limit

    def next_fetch_offset(self, tp: TopicPartition, position: int) -> int:
        """Where the next fetch of ``tp`` starts: after what is buffered, else the position."""
        queue = self._queues.get(tp)
        return queue[-1].end_offset if queue else position

    def next_fetch_epoch(self, tp: TopicPartition, epoch: int | None) -> int | None:
        """The leader epoch of the record just before :meth:`next_fetch_offset`: the last
        buffered batch's, else ``epoch`` (the last consumed record's); None if unknown."""
        queue = self._queues.get(tp)
        return queue[-1].end_epoch if queue else epoch

    def buffered(self, tp: TopicPartition) -> int:
        """How many responses are queued for ``tp``."""
        return len(self._queues.get(tp, ()))

    def add(self, fetch: CompletedFetch) -> None:
        self._queues.setdefault(fetch.tp, deque()).append(fetch)
        self._held += fetch.nbytes

    def clear(self, tp: TopicPartition) -> None:
        for fetch in self._queues.pop(tp, ()):
            self._held -= fetch.nbytes

    def retain(self, keep: set[TopicPartition]) -> None:
        for tp in [tp for tp in self._queues if tp not in keep]:
            self.clear(tp)

    def has_data(self) -> bool:
        return bool(self._queues)

    def drain(self, max_records: int, subscription: SubscriptionState) -> list[ConsumerRecord]:
        """Up to ``max_records`` records, advancing each partition's position past what it
        returns. Partitions take turns: each visit empties at most one response, and the
        partition served first moves to the back for the next call."""
        out: list[ConsumerRecord] = []
        order = list(self._queues)
        if order:  # rotate: whoever went first this time goes last next time
            first = order[0]
            self._queues[first] = self._queues.pop(first)
        while order and len(out) < max_records:
            for tp in order:
                if len(out) >= max_records:
                    break
                self._take_one(tp, max_records - len(out), subscription, out)
            order = list(self._queues)
        return out

    def _take_one(
        self,
        tp: TopicPartition,
        max_records: int,
        subscription: SubscriptionState,
        out: list[ConsumerRecord],
    ) -> None:
        """Take from the partition's first response; drop it once exhausted."""
        queue = self._queues.get(tp)
        if not queue:
            return
        state = subscription.state(tp) if subscription.is_assigned(tp) else None
        if state is None or not state.fetchable or queue[0].next_offset != state.position:
            self.clear(tp)  # stale: the partition was unassigned, reset or sought
            return
        head = queue[0]
        records = head.take(max_records)
        out.extend(records)
        subscription.advance(tp, head.next_offset, head.position_epoch)
        if head.error is not None:  # an unreadable batch: poll() raises it until a seek
            subscription.fail(tp, head.error)
            self.clear(tp)
            return
        if head.exhausted:
            queue.popleft()
            self._held -= head.nbytes
            if not queue:
                del self._queues[tp]
