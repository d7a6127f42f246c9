"""ConsumerGroupHeartbeat: join, stay, leave, static leave and rejoin (KIP-848).

Every check runs before the first record is written, so a refused heartbeat changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from raftka.broker.groups.api import GroupConfig, MemberPush, TopicsView
from raftka.broker.groups.rebalance import Rebalancer, heartbeat_interval_ms, to_assignment
from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    MemberMetadataRecord,
    TargetMemberRecord,
)
from raftka.broker.groups.state import (
    STATIC_LEFT_EPOCH,
    CurrentAssignment,
    GroupState,
    MemberMetadata,
    MemberState,
    TopicPartitions,
    as_dict,
    normalize,
    pairs,
    same,
)
from raftka.broker.groups.store import GroupStore
from raftka.broker.groups.tracker import Told
from raftka.common.group_errors import (
    FencedInstanceIdError,
    FencedMemberEpochError,
    GroupMaxSizeReachedError,
    UnknownMemberIdError,
    UnreleasedInstanceIdError,
)
from raftka.v1 import groups_pb2 as gpb


@dataclass(frozen=True, slots=True)
class HeartbeatResult:
    response: gpb.ConsumerGroupHeartbeatResponse
    pushes: list[MemberPush]


def _reported(request: gpb.ConsumerGroupHeartbeatRequest) -> dict[str, frozenset[int]] | None:
    if not request.owned_partitions_set:
        return None
    merged: dict[str, set[int]] = {}
    for item in request.owned_partitions:
        merged.setdefault(item.topic, set()).update(item.partitions)
    return as_dict(merged)


def _metadata(
    request: gpb.ConsumerGroupHeartbeatRequest,
    old: MemberMetadata,
    config: GroupConfig,
    client_id: str,
    client_host: str,
    classic_protocols: tuple[str, ...] | None,
) -> MemberMetadata:
    meta = replace(old, client_id=client_id, client_host=client_host)
    if classic_protocols is not None:
        meta = replace(meta, classic_protocols=classic_protocols)
    if request.HasField("instance_id"):
        meta = replace(meta, instance_id=request.instance_id)
    if request.HasField("rack_id"):
        meta = replace(meta, rack_id=request.rack_id)
    if request.HasField("rebalance_timeout_ms"):
        meta = replace(meta, rebalance_timeout_ms=request.rebalance_timeout_ms)
    if request.HasField("session_timeout_ms"):
        meta = replace(meta, session_timeout_ms=request.session_timeout_ms)
    elif not meta.session_timeout_ms:
        meta = replace(meta, session_timeout_ms=config.session_timeout_ms)
    if request.subscription_set:
        meta = replace(
            meta, subscribed_topic_names=tuple(sorted(set(request.subscribed_topic_names)))
        )
    if request.HasField("subscribed_topic_regex"):
        meta = replace(meta, subscribed_topic_regex=request.subscribed_topic_regex)
    if request.HasField("server_assignor"):
        meta = replace(meta, server_assignor=request.server_assignor)
    return meta


def _subscription(meta: MemberMetadata) -> tuple[tuple[str, ...], str]:
    return meta.subscribed_topic_names, meta.subscribed_topic_regex


class HeartbeatHandler:
    """One heartbeat against the store; raises a group error before writing anything."""

    __slots__ = ("config", "new_member_id", "rebalancer", "store")

    def __init__(
        self,
        store: GroupStore,
        rebalancer: Rebalancer,
        config: GroupConfig,
        new_member_id: Callable[[], str],
    ) -> None:
        self.store = store
        self.rebalancer = rebalancer
        self.config = config
        self.new_member_id = new_member_id

    def handle(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        topics: TopicsView,
        client_id: str,
        client_host: str,
        classic_protocols: tuple[str, ...] | None = None,
    ) -> HeartbeatResult:
        """``classic_protocols``: set for a member of the classic protocol (its JoinGroup's
        protocol names), None to keep what the member has."""
        epoch = request.member_epoch
        if epoch == 0:
            return self._join(request, topics, client_id, client_host, classic_protocols)
        group = self.store.get(request.group_id)
        member_id = request.member_id
        if group is None or member_id not in group.members:
            raise UnknownMemberIdError(
                f"member {member_id!r} is not in group {request.group_id!r} (expired, left or "
                "never joined): rejoin with member_epoch 0"
            )
        meta = group.members[member_id]
        if request.HasField("instance_id") and request.instance_id != meta.instance_id:
            raise FencedInstanceIdError(
                f"member {member_id!r} holds instance id {meta.instance_id!r}, not "
                f"{request.instance_id!r}"
            )
        if epoch == -1:
            return self._leave(group, member_id, topics)
        current = group.current(member_id)
        if epoch == STATIC_LEFT_EPOCH:
            return self._static_leave(group, member_id, current)
        owned = _reported(request)
        if current.member_epoch == STATIC_LEFT_EPOCH or epoch > current.member_epoch:
            raise FencedMemberEpochError(
                f"member {member_id!r} sent epoch {epoch}, its epoch is {current.member_epoch}: "
                "drop every partition and rejoin with member_epoch 0"
            )
        stale = epoch < current.member_epoch
        if stale and not (
            epoch == current.previous_member_epoch
            and owned is not None
            and pairs(owned) <= pairs(current.assigned)
        ):
            raise FencedMemberEpochError(
                f"member {member_id!r} sent epoch {epoch}, its epoch is {current.member_epoch}: "
                "drop every partition and rejoin with member_epoch 0"
            )
        new_meta = _metadata(request, meta, self.config, client_id, client_host, classic_protocols)
        changed = _subscription(new_meta) != _subscription(meta)
        if new_meta != meta:
            self.rebalancer.batch.write(MemberMetadataRecord(group.group_id, member_id, new_meta))
        return self._finish(
            group,
            member_id,
            topics,
            changed=changed,
            owned=None if stale else owned,
            reported=owned,
            joined=False,
        )

    def _join(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        topics: TopicsView,
        client_id: str,
        client_host: str,
        classic: tuple[str, ...] | None,
    ) -> HeartbeatResult:
        gid = request.group_id
        group = self.store.get(gid)
        member_id = request.member_id or self.new_member_id()
        existing = group.members.get(member_id) if group is not None else None
        instance_id = (
            request.instance_id
            if request.HasField("instance_id")
            else (existing.instance_id if existing else "")
        )
        replaced: str | None = None
        if instance_id and group is not None:
            holder = group.instance_holder(instance_id)
            if holder is not None and holder != member_id:
                if group.current(holder).member_epoch != STATIC_LEFT_EPOCH:
                    raise UnreleasedInstanceIdError(
                        f"instance id {instance_id!r} is held by live member {holder!r}: it "
                        "must leave (member_epoch -2) or time out first"
                    )
                replaced = holder
        if existing is not None and existing.instance_id and existing.instance_id != instance_id:
            raise FencedInstanceIdError(
                f"member {member_id!r} holds instance id {existing.instance_id!r}, not "
                f"{instance_id!r}"
            )
        size = len(group.members) if group is not None else 0
        if existing is None and replaced is None and size >= self.config.max_group_size:
            raise GroupMaxSizeReachedError(
                f"group {gid!r} has {size} members, the most it may have "
                f"({self.config.max_group_size})"
            )
        # ---- every check passed: write ----
        batch = self.rebalancer.batch
        if group is None or group.epoch is None:
            batch.write(GroupMetadataRecord(gid, group.epoch if group and group.epoch else 0))
            group = self.store.get(gid)
            assert group is not None
        if replaced is not None:
            old_meta = group.members[replaced]
            old_current = group.current(replaced)
            old_target = group.target(replaced)
            new_meta = _metadata(request, old_meta, self.config, client_id, client_host, classic)
            self.rebalancer.remove_member(group, replaced)
            batch.write(MemberMetadataRecord(gid, member_id, new_meta))
            batch.write(TargetMemberRecord(gid, member_id, old_target))
            inherited = replace(old_current, member_epoch=old_current.previous_member_epoch)
            batch.write(CurrentAssignmentRecord(gid, member_id, inherited))
            changed = _subscription(new_meta) != _subscription(old_meta)
        elif existing is not None:
            new_meta = _metadata(request, existing, self.config, client_id, client_host, classic)
            if new_meta != existing:
                batch.write(MemberMetadataRecord(gid, member_id, new_meta))
            current = group.current(member_id)
            if current.member_epoch == STATIC_LEFT_EPOCH:
                again = replace(current, member_epoch=current.previous_member_epoch)
            else:  # it dropped everything to rejoin: what it had is free
                again = CurrentAssignment()
            batch.write(CurrentAssignmentRecord(gid, member_id, again))
            changed = _subscription(new_meta) != _subscription(existing)
        else:
            new_meta = _metadata(
                request, MemberMetadata(), self.config, client_id, client_host, classic
            )
            batch.write(MemberMetadataRecord(gid, member_id, new_meta))
            batch.write(CurrentAssignmentRecord(gid, member_id, CurrentAssignment()))
            changed = True
        return self._finish(
            group, member_id, topics, changed=changed, owned={}, reported={}, joined=True
        )

    def _leave(self, group: GroupState, member_id: str, topics: TopicsView) -> HeartbeatResult:
        self.rebalancer.remove_member(group, member_id)
        self.rebalancer.settle(group, topics, changed=True, follow_metadata=True)
        pushes = self.rebalancer.reconcile_others(group, skip=None)
        response = gpb.ConsumerGroupHeartbeatResponse(
            member_id=member_id,
            member_epoch=-1,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
        )
        return HeartbeatResult(response, pushes)

    def _static_leave(
        self, group: GroupState, member_id: str, current: CurrentAssignment
    ) -> HeartbeatResult:
        if current.member_epoch != STATIC_LEFT_EPOCH:
            # The process closed: it owns nothing now. Its assignment is kept for the instance
            # id; what it still had to release is free at once.
            away = replace(
                current,
                member_epoch=STATIC_LEFT_EPOCH,
                previous_member_epoch=current.member_epoch,
                state=MemberState.STABLE,
                pending_revocation={},
            )
            self.rebalancer.batch.write(CurrentAssignmentRecord(group.group_id, member_id, away))
            self.rebalancer.released = bool(current.pending_revocation)
        tracker = self.rebalancer.tracker
        meta = group.members[member_id]
        tracker.touch((group.group_id, member_id), self.rebalancer.now_ms + meta.session_timeout_ms)
        tracker.rebalance_deadline.pop((group.group_id, member_id), None)
        tracker.told.pop((group.group_id, member_id), None)
        response = gpb.ConsumerGroupHeartbeatResponse(
            member_id=member_id,
            member_epoch=STATIC_LEFT_EPOCH,
            heartbeat_interval_ms=heartbeat_interval_ms(meta, self.config),
        )
        return HeartbeatResult(response, self.rebalancer.reconcile_others(group, skip=member_id))

    def _finish(
        self,
        group: GroupState,
        member_id: str,
        topics: TopicsView,
        *,
        changed: bool,
        owned: TopicPartitions | None,
        reported: TopicPartitions | None,
        joined: bool,
    ) -> HeartbeatResult:
        """``owned``: what reconciliation may trust (None for a stale report); ``reported``:
        what the request said, to tell whether the member needs its assignment again."""
        rebalancer = self.rebalancer
        key = (group.group_id, member_id)
        meta = group.members[member_id]
        rebalancer.tracker.touch(key, rebalancer.now_ms + meta.session_timeout_ms)
        rebalancer.settle(group, topics, changed=changed, follow_metadata=False)
        unseen = rebalancer.tracker.pushed_adds.pop(key, frozenset())
        if owned is not None and unseen:  # pushed after this heartbeat may have left
            owned = normalize(pairs(owned) | unseen)
        before = group.current(member_id)
        current = rebalancer.reconcile_member(group, member_id, owned)
        if joined or pairs(before.pending_revocation) - pairs(current.pending_revocation):
            rebalancer.released = True  # what it gave up may complete others' assignments
        pushes = rebalancer.reconcile_others(group, skip=member_id)
        told = rebalancer.tracker.told.get(key)
        send = (
            joined
            or told is None
            or told.epoch != current.member_epoch
            or not same(told.assigned, current.assigned)
            or (reported is not None and not same(reported, current.assigned))
        )
        response = gpb.ConsumerGroupHeartbeatResponse(
            member_id=member_id,
            member_epoch=current.member_epoch,
            heartbeat_interval_ms=heartbeat_interval_ms(meta, self.config),
        )
        if send:
            response.assignment.CopyFrom(to_assignment(current.assigned))
            response.has_assignment = True
            rebalancer.tracker.told[key] = Told(current.member_epoch, current.assigned)
        return HeartbeatResult(response, pushes)
