"""A shard under a virtual clock, with short helpers for heartbeats, commits and replays."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from raftka.broker.groups.api import (
    GroupConfig,
    MemberPush,
    Outcome,
    StoredMarker,
    StoredRecord,
)
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.v1 import groups_pb2 as gpb

TP = dict[str, set[int]]


class ShardHarness:
    def __init__(
        self, topics: Mapping[str, int] | None = None, config: GroupConfig | None = None
    ) -> None:
        self.config = config or GroupConfig()
        self.topics: dict[str, int] = dict(topics or {"t": 6})
        self.now_ms = 1_000_000
        ids = itertools.count(1)
        self.shard = ConsumerGroupShard(0, self.config, new_member_id=lambda: f"m{next(ids)}")
        self.log: list[StoredRecord | StoredMarker] = []
        self.pushes: list[MemberPush] = []

    def _take(self, outcome: Outcome[object]) -> None:
        self.log.extend(outcome.records)
        self.pushes.extend(outcome.pushes)

    def heartbeat(
        self, group_id: str = "g", **fields: object
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        request = gpb.ConsumerGroupHeartbeatRequest(group_id=group_id, **fields)  # type: ignore[arg-type]
        outcome = self.shard.heartbeat(
            request, now_ms=self.now_ms, topics=self.topics, client_id="cid", client_host="h"
        )
        self._take(outcome)  # type: ignore[arg-type]
        return outcome.response

    def join(
        self,
        group_id: str = "g",
        topics: Sequence[str] = ("t",),
        **fields: object,
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        fields.setdefault("rebalance_timeout_ms", 10_000)
        return self.heartbeat(
            group_id,
            member_epoch=0,
            subscription_set=True,
            subscribed_topic_names=list(topics),
            **fields,
        )

    def beat(
        self, member_id: str, epoch: int, owned: TP, group_id: str = "g", **fields: object
    ) -> gpb.ConsumerGroupHeartbeatResponse:
        return self.heartbeat(
            group_id,
            member_id=member_id,
            member_epoch=epoch,
            owned_partitions_set=True,
            owned_partitions=[
                gpb.GroupTopicPartitions(topic=t, partitions=sorted(ps))
                for t, ps in sorted(owned.items())
            ],
            **fields,
        )

    def tick(self, advance_ms: int = 0) -> Outcome[None]:
        self.now_ms += advance_ms
        outcome = self.shard.tick(now_ms=self.now_ms, topics=self.topics)
        self._take(outcome)  # type: ignore[arg-type]
        return outcome

    def commit(
        self,
        group_id: str,
        member_id: str,
        epoch: int,
        offsets: Mapping[tuple[str, int], int],
        metadata: str = "",
    ) -> list[tuple[str, int, int]]:
        request = gpb.OffsetCommitRequest(
            group_id=group_id, member_id=member_id, member_epoch=epoch
        )
        for (topic, p), offset in offsets.items():
            request.topics.add(name=topic).partitions.add(
                partition=p, offset=offset, leader_epoch=3, metadata=metadata
            )
        outcome = self.shard.commit_offsets(request, now_ms=self.now_ms, topics=self.topics)
        self._take(outcome)  # type: ignore[arg-type]
        return [
            (t.name, r.partition, r.error_code)
            for t in outcome.response.topics
            for r in t.partitions
        ]

    def txn_commit(
        self,
        group_id: str,
        offsets: Mapping[tuple[str, int], int],
        *,
        producer: tuple[int, int] = (7, 0),
        **fields: object,
    ) -> list[tuple[str, int, int]]:
        """A TxnOffsetCommit by ``producer`` (id, epoch); ``fields``: member_id, member_epoch."""
        fields.setdefault("member_epoch", -1)
        request = gpb.TxnOffsetCommitRequest(
            transactional_id="tx",
            group_id=group_id,
            producer_id=producer[0],
            producer_epoch=producer[1],
            **fields,  # type: ignore[arg-type]
        )
        for (topic, p), offset in offsets.items():
            request.topics.add(name=topic).partitions.add(
                partition=p, offset=offset, leader_epoch=3
            )
        outcome = self.shard.txn_commit_offsets(request, now_ms=self.now_ms, topics=self.topics)
        if outcome.records:
            assert outcome.transactional_producer == producer
            assert all(r.producer_id == producer[0] for r in outcome.records)
        self._take(outcome)  # type: ignore[arg-type]
        return [
            (t.name, r.partition, r.error_code)
            for t in outcome.response.topics
            for r in t.partitions
        ]

    def marker(self, producer_id: int, committed: bool) -> None:
        """The transaction's marker reached the partition (written to the log, then applied)."""
        self.log.append(StoredMarker(producer_id, 1, committed))
        outcome = self.shard.complete_transaction(producer_id, committed, now_ms=self.now_ms)
        assert not outcome.records

    def fetch(self, group_id: str = "g", **fields: object) -> gpb.OffsetFetchResponse:
        return self.shard.fetch_offsets(gpb.OffsetFetchRequest(group_id=group_id, **fields))  # type: ignore[arg-type]

    def describe(self, group_id: str = "g") -> gpb.DescribedGroup:
        return self.shard.describe_group(group_id)

    def replayed(self) -> ConsumerGroupShard:
        """A fresh shard loaded from the records written so far, compacted as the cleaner
        would (latest value per key; keys whose latest is a tombstone dropped)."""
        assert all(isinstance(r, StoredRecord) for r in self.log), "markers: use replayed_log"
        return replay_compacted(self.log, self.config, self.now_ms)  # type: ignore[arg-type]

    def replayed_log(self) -> ConsumerGroupShard:
        """A fresh shard loaded from everything written so far, markers included (uncompacted)."""
        shard = ConsumerGroupShard(0, self.config)
        for item in self.log:
            if isinstance(item, StoredMarker):
                shard.replay_marker(item.producer_id, item.committed)
            else:
                shard.replay(item)
        shard.loaded(self.now_ms)
        return shard


def replay_compacted(
    log: Sequence[StoredRecord], config: GroupConfig, now_ms: int
) -> ConsumerGroupShard:
    latest: dict[bytes, int] = {}
    for i, record in enumerate(log):
        latest[record.key] = i
    shard = ConsumerGroupShard(0, config)
    for i, record in enumerate(log):
        if latest[record.key] == i and record.value is not None:
            shard.replay(record)
    shard.loaded(now_ms)
    return shard


def assignment(response: gpb.ConsumerGroupHeartbeatResponse) -> TP:
    assert response.has_assignment, f"no assignment in {response}"
    return {tp.topic: set(tp.partitions) for tp in response.assignment.topic_partitions}


def described_assignment(group: gpb.DescribedGroup, member_id: str) -> TP:
    for m in group.members:
        if m.member_id == member_id:
            return {tp.topic: set(tp.partitions) for tp in m.assignment.topic_partitions}
    raise AssertionError(f"{member_id} not in {group}")
