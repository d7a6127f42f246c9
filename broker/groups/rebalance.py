"""Group-level steps shared by heartbeats and timers: resolve subscriptions against the
metadata, bump the group epoch, compute the target assignment, reconcile members, remove a
member, and collect the pushes for members whose assignment changed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from raftka.broker.groups.api import GroupConfig, MemberPush, TopicsView
from raftka.broker.groups.assignors import ASSIGNORS
from raftka.broker.groups.batch import RecordBatch
from raftka.broker.groups.reconcile import reconcile
from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    MemberMetadataRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
)
from raftka.broker.groups.state import (
    STATIC_LEFT_EPOCH,
    CurrentAssignment,
    GroupState,
    MemberMetadata,
    MemberState,
    TopicPartitions,
    pairs,
    same,
)
from raftka.broker.groups.tracker import MemberTracker, Told
from raftka.broker.groups.validation import compile_regex
from raftka.v1 import groups_pb2 as gpb


def member_topics(meta: MemberMetadata, topics: Mapping[str, int]) -> frozenset[str]:
    """The existing topics a member subscribes to (regex: full match, never "__" topics)."""
    chosen = {t for t in meta.subscribed_topic_names if t in topics}
    if meta.subscribed_topic_regex:
        pattern = compile_regex(meta.subscribed_topic_regex)
        chosen.update(
            t for t in topics if not t.startswith("__") and pattern.fullmatch(t) is not None
        )
    return frozenset(chosen)


def subscribed_counts(group: GroupState, topics: TopicsView) -> dict[str, int]:
    """The partition count of every existing topic some member subscribes to. Each distinct
    regex is matched once over the topics (tick calls this often)."""
    chosen: set[str] = set()
    regexes: set[str] = set()
    for meta in group.members.values():
        chosen.update(t for t in meta.subscribed_topic_names if t in topics)
        if meta.subscribed_topic_regex:
            regexes.add(meta.subscribed_topic_regex)
    for regex in sorted(regexes):
        pattern = compile_regex(regex)
        chosen.update(
            t for t in topics if not t.startswith("__") and pattern.fullmatch(t) is not None
        )
    return {t: topics[t] for t in sorted(chosen)}


def subscribes_to(group: GroupState, topic: str) -> bool:
    return any(topic in member_topics(meta, {topic: 1}) for meta in group.members.values())


def group_assignor(group: GroupState, default: str) -> str:
    """The most requested assignor among members (ties: by name), else the default."""
    wanted = Counter(m.server_assignor for m in group.members.values() if m.server_assignor)
    if not wanted:
        return default
    return sorted(wanted.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]


def heartbeat_interval_ms(meta: MemberMetadata, config: GroupConfig) -> int:
    """The configured interval, shortened to a third of the member's own session timeout (a
    member with a 3 s session for a failover experiment must not be told to wait 5 s)."""
    if meta.session_timeout_ms <= 0:
        return config.heartbeat_interval_ms
    return max(1, min(config.heartbeat_interval_ms, meta.session_timeout_ms // 3))


def push_response(
    group_id: str,
    member_id: str,
    current: CurrentAssignment,
    meta: MemberMetadata,
    config: GroupConfig,
) -> gpb.ConsumerGroupHeartbeatResponse:
    return gpb.ConsumerGroupHeartbeatResponse(
        member_id=member_id,
        member_epoch=current.member_epoch,
        heartbeat_interval_ms=heartbeat_interval_ms(meta, config),
        assignment=to_assignment(current.assigned),
        has_assignment=True,
    )


def to_assignment(tps: TopicPartitions) -> gpb.Assignment:
    return gpb.Assignment(
        topic_partitions=[
            gpb.GroupTopicPartitions(topic=t, partitions=sorted(ps))
            for t, ps in sorted(tps.items())
            if ps
        ]
    )


class Rebalancer:
    """Runs the group-level steps of one call, writing into its batch."""

    __slots__ = ("batch", "config", "now_ms", "released", "target_changed", "tracker")

    def __init__(
        self, batch: RecordBatch, tracker: MemberTracker, config: GroupConfig, now_ms: int
    ) -> None:
        self.batch = batch
        self.tracker = tracker
        self.config = config
        self.now_ms = now_ms
        # Others are reconciled (and pushed) only after the target changed or partitions
        # were released.
        self.target_changed = False
        self.released = False

    def bump_epoch(self, group: GroupState) -> None:
        self.batch.write(GroupMetadataRecord(group.group_id, (group.epoch or 0) + 1))

    def refresh_metadata(self, group: GroupState, topics: TopicsView) -> bool:
        """Writes the subscribed topics' partition counts when they changed; True if so."""
        counts = subscribed_counts(group, topics)
        if group.partition_metadata == counts:
            return False
        self.batch.write(PartitionMetadataRecord(group.group_id, counts))
        return True

    def update_target(self, group: GroupState) -> None:
        """Recomputes the target assignment when the group epoch is ahead of it."""
        epoch = group.epoch or 0
        if (group.assignment_epoch or 0) >= epoch and group.assignment_epoch is not None:
            return
        topics = group.partition_metadata or {}
        members = {m: member_topics(meta, topics) for m, meta in group.members.items()}
        assignor = ASSIGNORS[group_assignor(group, self.config.default_assignor)]
        new = assignor(members, topics, dict(group.targets))
        for member_id in sorted(members):
            target = new.get(member_id, {})
            if member_id not in group.targets or not same(group.targets[member_id], target):
                self.batch.write(TargetMemberRecord(group.group_id, member_id, target))
        self.batch.write(TargetMetadataRecord(group.group_id, epoch))
        self.target_changed = True

    def reconcile_member(
        self, group: GroupState, member_id: str, owned: TopicPartitions | None
    ) -> CurrentAssignment:
        current = group.current(member_id)
        if current.member_epoch == STATIC_LEFT_EPOCH:
            return current
        owners = group.owners(excluding=member_id)
        new = reconcile(
            current,
            target_epoch=group.assignment_epoch or 0,
            target=group.target(member_id),
            owned=owned,
            owned_elsewhere=lambda t, p: (t, p) in owners,
        )
        self.write_current(group, member_id, new)
        return new

    def write_current(self, group: GroupState, member_id: str, new: CurrentAssignment) -> None:
        key = (group.group_id, member_id)
        if member_id not in group.currents or group.currents[member_id] != new:
            self.batch.write(CurrentAssignmentRecord(group.group_id, member_id, new))
        if new.state is MemberState.UNREVOKED_PARTITIONS:
            if key not in self.tracker.rebalance_deadline:
                timeout = group.members[member_id].rebalance_timeout_ms
                self.tracker.rebalance_deadline[key] = self.now_ms + timeout
        else:
            self.tracker.rebalance_deadline.pop(key, None)

    def reconcile_others(self, group: GroupState, skip: str | None) -> list[MemberPush]:
        """Moves every other member as far as is safe without its report, and returns the
        pushes for those whose epoch or assignment changed. Without a fresh report a member is
        assumed to own all it was given; partitions a push adds are remembered (``pushed_adds``)
        so that a heartbeat sent before the push arrived cannot count them as released."""
        pushes: list[MemberPush] = []
        if not (self.target_changed or self.released):
            return pushes
        owners = group.owners()
        for member_id in sorted(group.members):
            if member_id == skip:
                continue
            current = group.current(member_id)
            if current.member_epoch == STATIC_LEFT_EPOCH or group.members[member_id].is_classic:
                continue  # a classic member moves only in its own JoinGroup
            new = reconcile(
                current,
                target_epoch=group.assignment_epoch or 0,
                target=group.target(member_id),
                owned=None,
                owned_elsewhere=lambda t, p, me=member_id: owners.get((t, p), me) != me,  # type: ignore[misc]
            )
            self.write_current(group, member_id, new)
            added = pairs(new.assigned) - pairs(current.assigned)
            if added:
                key = (group.group_id, member_id)
                self.tracker.pushed_adds[key] = self.tracker.pushed_adds.get(
                    key, frozenset()
                ) | frozenset(added)
            for tp in pairs(current.assigned) | pairs(current.pending_revocation):
                if owners.get(tp) == member_id:
                    del owners[tp]
            for tp in pairs(new.assigned) | pairs(new.pending_revocation):
                owners[tp] = member_id
            push = self.maybe_push(group, member_id)
            if push is not None:
                pushes.append(push)
        return pushes

    def maybe_push(self, group: GroupState, member_id: str) -> MemberPush | None:
        current = group.current(member_id)
        key = (group.group_id, member_id)
        told = self.tracker.told.get(key)
        if (
            told is not None
            and told.epoch == current.member_epoch
            and same(told.assigned, current.assigned)
        ):
            return None
        self.tracker.told[key] = Told(current.member_epoch, current.assigned)
        return MemberPush(
            group.group_id,
            member_id,
            push_response(
                group.group_id, member_id, current, group.members[member_id], self.config
            ),
        )

    def remove_member(self, group: GroupState, member_id: str) -> None:
        """Tombstones the member's records (current, target, metadata: Kafka's order)."""
        gid = group.group_id
        if member_id in group.currents:
            self.batch.write(CurrentAssignmentRecord(gid, member_id, None))
        if member_id in group.targets:
            self.batch.write(TargetMemberRecord(gid, member_id, None))
        self.batch.write(MemberMetadataRecord(gid, member_id, None))
        self.tracker.forget((gid, member_id))

    def settle(
        self, group: GroupState, topics: TopicsView, *, changed: bool, follow_metadata: bool
    ) -> bool:
        """After members changed (``changed``) or to follow the metadata (tick; a plain
        heartbeat skips it): bump the epoch when needed and bring the target up to date.
        True when the epoch was bumped."""
        if group.epoch is None:
            return False
        bumped = False
        refreshed = (changed or follow_metadata) and self.refresh_metadata(group, topics)
        if refreshed or changed:
            self.bump_epoch(group)
            bumped = True
        self.update_target(group)
        return bumped
