"""ConsumerGroupShard: the sans-I/O coordinator of the groups of one ``__consumer_offsets``
partition (the GroupShard protocol of ``api.py``).

Every change is written as records through one ``RecordBatch``, which applies each record with
the replay code, so a shard rebuilt from the log has the same state as the live one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence

import structlog

from raftka.broker.groups import admin, offsets
from raftka.broker.groups.api import GroupConfig, MemberPush, Outcome, StoredRecord, TopicsView
from raftka.broker.groups.assignors import ASSIGNORS
from raftka.broker.groups.batch import RecordBatch
from raftka.broker.groups.classic import (
    ClassicHandler,
    ClassicJoin,
    ClassicLeaver,
    ClassicRefused,
    ClassicSync,
    JoinAnswer,
    LeaveAnswer,
    SyncAnswer,
)
from raftka.broker.groups.heartbeat import HeartbeatHandler
from raftka.broker.groups.rebalance import Rebalancer
from raftka.broker.groups.state import MemberState
from raftka.broker.groups.store import GroupStore
from raftka.broker.groups.tracker import MemberTracker
from raftka.broker.groups.validation import check_heartbeat
from raftka.common.errors import InvalidConfigError, RaftkaError
from raftka.v1 import groups_pb2 as gpb

log = structlog.get_logger(__name__)


def _uuid_member_id() -> str:
    return str(uuid.uuid4())


class ConsumerGroupShard:
    """The groups of ``__consumer_offsets`` partition ``partition``."""

    def __init__(
        self,
        partition: int,
        config: GroupConfig,
        *,
        new_member_id: Callable[[], str] = _uuid_member_id,
    ) -> None:
        if config.default_assignor not in ASSIGNORS:
            raise InvalidConfigError(
                f"group coordinator default assignor {config.default_assignor!r} is not one of "
                f"{', '.join(sorted(ASSIGNORS))}"
            )
        self.partition = partition
        self.config = config
        self.store = GroupStore()
        self.tracker = MemberTracker()
        self._new_member_id = new_member_id
        # The metadata the last tick saw, numbered; group -> the number its last tick saw.
        self._topics: frozenset[tuple[str, int]] = frozenset()
        self._topics_version = 0
        self._metadata_seen: dict[str, int] = {}

    # ---- loading ----

    def replay(self, record: StoredRecord) -> None:
        self.store.apply_stored(record)

    def replay_marker(self, producer_id: int, committed: bool) -> None:
        self.store.complete(producer_id, committed)

    def loaded(self, now_ms: int) -> None:
        """Arms every member's session timer, and the rebalance timer of those revoking."""
        self.tracker = MemberTracker()
        for gid, group in self.store.groups.items():
            for member_id, meta in group.members.items():
                self.tracker.touch((gid, member_id), now_ms + meta.session_timeout_ms)
                if group.current(member_id).state is MemberState.UNREVOKED_PARTITIONS:
                    self.tracker.rebalance_deadline[(gid, member_id)] = (
                        now_ms + meta.rebalance_timeout_ms
                    )
        log.info(
            "group_shard_loaded",
            partition=self.partition,
            groups=len(self.store.groups),
            members=len(self.tracker.session_deadline),
        )

    # ---- membership ----

    def _rebalancer(self, now_ms: int) -> Rebalancer:
        return Rebalancer(RecordBatch(self.store), self.tracker, self.config, now_ms)

    def heartbeat(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[gpb.ConsumerGroupHeartbeatResponse]:
        rebalancer = self._rebalancer(now_ms)
        handler = HeartbeatHandler(self.store, rebalancer, self.config, self._new_member_id)
        try:
            check_heartbeat(request, self.config)
            result = handler.handle(request, topics, client_id, client_host)
        except RaftkaError as e:
            if rebalancer.batch.records:  # pragma: no cover - checks run before any write
                raise
            return Outcome(
                gpb.ConsumerGroupHeartbeatResponse(
                    error_code=e.code,
                    error_message=str(e),
                    member_id=request.member_id,
                    member_epoch=request.member_epoch,
                    heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                )
            )
        if rebalancer.batch.records:
            self._metadata_seen.pop(request.group_id, None)
        return Outcome(result.response, tuple(rebalancer.batch.records), tuple(result.pushes))

    # ---- the classic protocol (classic.py) ----

    def _classic(self, now_ms: int) -> ClassicHandler:
        return ClassicHandler(
            self.store, self._rebalancer(now_ms), self.config, self._new_member_id
        )

    def _written(self, group_id: str, handler: ClassicHandler) -> tuple[StoredRecord, ...]:
        records = tuple(handler.rebalancer.batch.records)
        if records:
            self._metadata_seen.pop(group_id, None)
        return records

    def classic_join(
        self,
        request: ClassicJoin,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[JoinAnswer]:
        handler = self._classic(now_ms)
        try:
            answer, pushes = handler.join(request, topics, client_id, client_host)
        except (ClassicRefused, RaftkaError) as e:
            return Outcome(JoinAnswer(_code(e), e.message, request.member_id))
        return Outcome(answer, self._written(request.group_id, handler), tuple(pushes))

    def classic_sync(self, request: ClassicSync, *, now_ms: int) -> Outcome[SyncAnswer]:
        try:
            return Outcome(self._classic(now_ms).sync(request))
        except (ClassicRefused, RaftkaError) as e:
            return Outcome(SyncAnswer(_code(e), e.message, {}))

    def classic_heartbeat(
        self, group_id: str, member_id: str, generation: int, *, now_ms: int
    ) -> Outcome[tuple[int, str | None]]:
        try:
            return Outcome((self._classic(now_ms).heartbeat(group_id, member_id, generation), None))
        except (ClassicRefused, RaftkaError) as e:
            return Outcome((_code(e), e.message))

    def classic_leave(
        self, group_id: str, leavers: Sequence[ClassicLeaver], *, now_ms: int, topics: TopicsView
    ) -> Outcome[list[LeaveAnswer]]:
        handler = self._classic(now_ms)
        try:
            answers, pushes = handler.leave(group_id, leavers, topics)
        except RaftkaError as e:
            refused = [
                LeaveAnswer(x.member_id, x.instance_id, _code(e), e.message) for x in leavers
            ]
            return Outcome(refused)
        return Outcome(answers, self._written(group_id, handler), tuple(pushes))

    def not_told(self, group_id: str, member_id: str) -> None:
        self.tracker.told.pop((group_id, member_id), None)

    def tick(self, *, now_ms: int, topics: TopicsView) -> Outcome[None]:
        """Removes members whose session or rebalance timeout passed, and follows the metadata."""
        rebalancer = self._rebalancer(now_ms)
        touched: set[str] = set()
        current = frozenset(topics.items())
        if current != self._topics:
            self._topics, self._topics_version = current, self._topics_version + 1
        seen = self._topics_version
        for (gid, member_id), why in self.tracker.expired(now_ms):
            group = self.store.get(gid)
            if group is None or member_id not in group.members:
                self.tracker.forget((gid, member_id))
                continue
            log.info("group_member_expired", group_id=gid, member_id=member_id, reason=why)
            rebalancer.remove_member(group, member_id)
            touched.add(gid)
        pushes: list[MemberPush] = []
        for gid in sorted(self.store.groups):
            group = self.store.groups[gid]
            if not group.is_consumer or (gid not in touched and not group.members):
                continue
            rebalancer.target_changed = False
            # Resolving subscriptions costs a pass over the topics per regex: skip it while
            # neither the metadata nor the group changed since the last tick.
            follow = gid in touched or self._metadata_seen.get(gid) != seen
            rebalancer.settle(group, topics, changed=gid in touched, follow_metadata=follow)
            self._metadata_seen[gid] = seen
            pushes.extend(rebalancer.reconcile_others(group, skip=None))
        return Outcome(None, tuple(rebalancer.batch.records), tuple(pushes))

    def next_deadline_ms(self) -> int | None:
        return self.tracker.next_deadline_ms()

    # ---- offsets ----

    def commit_offsets(
        self, request: gpb.OffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]:
        batch = RecordBatch(self.store)
        response = offsets.commit(
            self.store, batch, request, now_ms=now_ms, topics=topics, config=self.config
        )
        return Outcome(response, tuple(batch.records))

    def txn_commit_offsets(
        self, request: gpb.TxnOffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]:
        producer = (request.producer_id, request.producer_epoch)
        batch = RecordBatch(self.store, producer)
        response = offsets.txn_commit(
            self.store, batch, request, now_ms=now_ms, topics=topics, config=self.config
        )
        if not batch.records:
            return Outcome(response)
        return Outcome(response, tuple(batch.records), transactional_producer=producer)

    def complete_transaction(
        self, producer_id: int, committed: bool, *, now_ms: int
    ) -> Outcome[None]:
        pending = self.store.pending.epoch_of(producer_id) is not None
        applied = self.store.complete(producer_id, committed)
        if pending:
            log.info(
                "group_transaction_completed",
                partition=self.partition,
                producer_id=producer_id,
                committed=committed,
                offsets_committed=applied,
            )
        return Outcome(None)

    def fetch_offsets(self, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
        return offsets.fetch(self.store, request)

    def delete_offsets(self, request: gpb.OffsetDeleteRequest) -> Outcome[gpb.OffsetDeleteResponse]:
        batch = RecordBatch(self.store)
        response = offsets.delete(self.store, batch, request)
        return Outcome(response, tuple(batch.records))

    # ---- administration ----

    def list_groups(self, request: gpb.ListGroupsRequest) -> list[gpb.ListedGroup]:
        return admin.list_groups(self.store, request)

    def describe_group(self, group_id: str) -> gpb.DescribedGroup:
        return admin.describe(self.store, group_id, self.config)

    def delete_groups(self, group_ids: Sequence[str]) -> Outcome[list[gpb.GroupResult]]:
        batch = RecordBatch(self.store)
        results = admin.delete_groups(self.store, batch, group_ids)
        for gid in group_ids:
            if self.store.get(gid) is None:
                self.tracker.forget_group(gid)
                self._metadata_seen.pop(gid, None)
        return Outcome(results, tuple(batch.records))

    def committed_offsets(self) -> Iterator[tuple[str, str, int, int]]:
        """(group, topic, partition, offset) of every committed offset here (metrics: lag)."""
        for group in self.store.groups.values():
            for (topic, partition), committed in group.offsets.items():
                yield group.group_id, topic, partition, committed.offset

    def group_ids(self) -> list[str]:
        return sorted(self.store.groups)


def _code(error: ClassicRefused | RaftkaError) -> int:
    return int(error.code)
