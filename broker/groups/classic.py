"""Members of Kafka's classic group protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) in a
consumer group, as KIP-848's upgrade path lets them live (Kafka 3.7+).

A classic member is a consumer-protocol member whose moves are driven by its own requests:

- JoinGroup is a consumer heartbeat: the ConsumerProtocolSubscription's topics become the
  member's subscription and its owned partitions its report (none for an eager client, which
  revoked everything before joining); the group's server-side assignor computes the target and
  the member is reconciled against it at once. The answer carries the member epoch as the
  generation, and no member list, so no client-side assignor runs.
- SyncGroup writes nothing: it answers the assignment that JoinGroup reconciled.
- Heartbeat answers REBALANCE_IN_PROGRESS when the member must join again to move on: the group
  epoch passed its epoch, it must revoke partitions (UNREVOKED_PARTITIONS), or partitions it
  waits for (UNRELEASED_PARTITIONS) are free now.
- LeaveGroup removes it as a consumer heartbeat with epoch -1 does.

The coordinator never moves a classic member on its own (``Rebalancer.reconcile_others``
skips them): its epoch, and so the generation its commits carry, changes only in its JoinGroup.
Partitions reach a member only once every other member has reported them released, whatever
protocol (eager or cooperative) each runs, so no partition is owned by two members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from raftka.broker.groups.api import GroupConfig, MemberPush, TopicsView
from raftka.broker.groups.heartbeat import HeartbeatHandler
from raftka.broker.groups.rebalance import Rebalancer
from raftka.broker.groups.state import (
    STATIC_LEFT_EPOCH,
    CurrentAssignment,
    GroupState,
    MemberState,
    TopicPartitions,
    pairs,
)
from raftka.broker.groups.store import GroupStore
from raftka.broker.groups.validation import MAX_ID_BYTES, check_group_id, check_heartbeat
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.v1 import groups_pb2 as gpb

PROTOCOL_TYPE = "consumer"
"""The only classic protocol type a consumer group serves (Kafka's ConsumerProtocol)."""

PROTOCOL_ASSIGNORS = {
    "range": "range",
    "roundrobin": "uniform",
    "sticky": "uniform",
    "cooperative-sticky": "uniform",
    "uniform": "uniform",
}
"""Client-side assignor names -> the server-side assignor that stands in for them."""

MAX_PROTOCOLS = 64
"""Protocol names a JoinGroup may list (clients list one to three); they are stored."""

# Kafka's error codes (Raftka's ErrorCode numbers) of the classic protocol.
NONE = 0
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
FENCED_INSTANCE_ID = 82
MEMBER_ID_REQUIRED = 79


class ClassicRefused(Exception):
    """A classic request refused before anything was written: Kafka's code and why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClassicJoin:
    group_id: str
    member_id: str
    instance_id: str | None
    protocol_type: str
    protocols: tuple[str, ...]
    """The client's protocol (assignor) names, preferred first."""
    topics: tuple[str, ...]
    owned: TopicPartitions | None
    """From the subscription (v1+); None for a v0 subscription, which reports none."""
    rack_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int
    member_id_required: bool
    """JoinGroup v4+ of a dynamic member without an id: answer MEMBER_ID_REQUIRED (KIP-394)."""


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    error_code: int
    error_message: str | None
    member_id: str
    generation: int = -1
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class ClassicSync:
    group_id: str
    member_id: str
    generation: int
    protocol_type: str | None
    protocol_name: str | None


@dataclass(frozen=True, slots=True)
class SyncAnswer:
    error_code: int
    error_message: str | None
    assignment: TopicPartitions
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class ClassicLeaver:
    member_id: str
    instance_id: str | None


@dataclass(frozen=True, slots=True)
class LeaveAnswer:
    member_id: str
    instance_id: str | None
    error_code: int
    error_message: str | None


def server_assignor(protocols: Sequence[str]) -> str | None:
    """The server-side assignor for the first of the client's protocols we know, or None."""
    for name in protocols:
        if name in PROTOCOL_ASSIGNORS:
            return PROTOCOL_ASSIGNORS[name]
    return None


class ClassicHandler:
    """One classic request against the store; refuses (ClassicRefused, RaftkaError) before
    writing anything."""

    __slots__ = ("config", "heartbeats", "rebalancer", "store")

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
        self.heartbeats = HeartbeatHandler(store, rebalancer, config, new_member_id)

    def join(
        self, request: ClassicJoin, topics: TopicsView, client_id: str, client_host: str
    ) -> tuple[JoinAnswer, list[MemberPush]]:
        check_group_id(request.group_id)
        if request.protocol_type != PROTOCOL_TYPE or not request.protocols:
            raise ClassicRefused(
                INCONSISTENT_GROUP_PROTOCOL,
                f"protocol type {request.protocol_type!r} with {len(request.protocols)} "
                f"protocols: a consumer group serves protocol type {PROTOCOL_TYPE!r} with at "
                "least one protocol",
            )
        if len(request.protocols) > MAX_PROTOCOLS or any(
            not 0 < len(name.encode()) <= MAX_ID_BYTES for name in request.protocols
        ):
            raise InvalidRequestError(
                f"{len(request.protocols)} protocols: at most {MAX_PROTOCOLS}, each name 1 to "
                f"{MAX_ID_BYTES} bytes"
            )
        config = self.config
        if not (
            config.min_session_timeout_ms
            <= request.session_timeout_ms
            <= config.max_session_timeout_ms
        ):
            raise ClassicRefused(
                INVALID_SESSION_TIMEOUT,
                f"session timeout {request.session_timeout_ms} ms is outside "
                f"{config.min_session_timeout_ms}..{config.max_session_timeout_ms} ms",
            )
        member_id = request.member_id
        if not member_id:
            member_id = self.heartbeats.new_member_id()
            if request.member_id_required and request.instance_id is None:
                return JoinAnswer(
                    MEMBER_ID_REQUIRED, "join again with this member id", member_id
                ), []
        group = self.store.get(request.group_id)
        epoch = 0
        if group is not None and member_id in group.members:
            epoch = max(group.current(member_id).member_epoch, 0)
        elif request.owned:
            # It claims partitions of a membership that is gone (expired, removed): they may
            # be another member's by now. Like a classic group, make it drop them first.
            raise ClassicRefused(
                UNKNOWN_MEMBER_ID,
                f"member {member_id!r} is not in group {request.group_id!r} but reports owned "
                "partitions: drop them and join again with an empty member id",
            )
        elif group is not None and request.instance_id is not None:
            self._release_instance(request.group_id, group, request.instance_id, topics)
        heartbeat = gpb.ConsumerGroupHeartbeatRequest(
            group_id=request.group_id,
            member_id=member_id,
            member_epoch=epoch,
            rebalance_timeout_ms=max(request.rebalance_timeout_ms, 1),
            session_timeout_ms=request.session_timeout_ms,
            subscribed_topic_names=sorted(set(request.topics)),
            subscription_set=True,
        )
        assignor = server_assignor(request.protocols)
        if assignor is not None:
            heartbeat.server_assignor = assignor
        if request.instance_id is not None:
            heartbeat.instance_id = request.instance_id
        if request.rack_id:
            heartbeat.rack_id = request.rack_id
        if epoch > 0:
            # An eager client revoked everything before joining; a v0 subscription reports
            # nothing either (only eager assignors use it).
            heartbeat.owned_partitions_set = True
            for topic, partitions in sorted((request.owned or {}).items()):
                heartbeat.owned_partitions.add(topic=topic, partitions=sorted(partitions))
        check_heartbeat(heartbeat, config)
        result = self.heartbeats.handle(
            heartbeat, topics, client_id, client_host, classic_protocols=request.protocols
        )
        group = self.store.get(request.group_id)
        assert group is not None
        current = group.current(member_id)
        answer = JoinAnswer(NONE, None, member_id, current.member_epoch, request.protocols[0])
        return answer, result.pushes

    def sync(self, request: ClassicSync) -> SyncAnswer:
        group, meta_protocols = self._member(request.group_id, request.member_id)
        protocol = meta_protocols[0]
        if (request.protocol_type is not None and request.protocol_type != PROTOCOL_TYPE) or (
            request.protocol_name is not None and request.protocol_name != protocol
        ):
            raise ClassicRefused(
                INCONSISTENT_GROUP_PROTOCOL,
                f"SyncGroup names protocol {request.protocol_type!r}/{request.protocol_name!r}, "
                f"the member joined with {PROTOCOL_TYPE!r}/{protocol!r}",
            )
        current = self._check_generation(group, request.member_id, request.generation)
        self._touch(group, request.member_id)
        return SyncAnswer(NONE, None, current.assigned, protocol)

    def heartbeat(self, group_id: str, member_id: str, generation: int) -> int:
        """NONE, or REBALANCE_IN_PROGRESS when the member must join again to move on."""
        group, _ = self._member(group_id, member_id)
        self._check_generation(group, member_id, generation)
        self._touch(group, member_id)
        return REBALANCE_IN_PROGRESS if must_rejoin(group, member_id) else NONE

    def leave(
        self, group_id: str, leavers: Sequence[ClassicLeaver], topics: TopicsView
    ) -> tuple[list[LeaveAnswer], list[MemberPush]]:
        check_group_id(group_id)
        answers: list[LeaveAnswer] = []
        pushes: list[MemberPush] = []
        for leaver in leavers:
            group = self.store.get(group_id)
            member_id = leaver.member_id
            if not member_id and leaver.instance_id and group is not None:
                member_id = group.instance_holder(leaver.instance_id) or ""
            request = gpb.ConsumerGroupHeartbeatRequest(
                group_id=group_id, member_id=member_id, member_epoch=-1
            )
            if leaver.instance_id is not None:
                request.instance_id = leaver.instance_id
            try:
                if not member_id:
                    raise ClassicRefused(
                        UNKNOWN_MEMBER_ID,
                        f"no member of group {group_id!r} holds instance id {leaver.instance_id!r}",
                    )
                result = self.heartbeats.handle(request, topics, "", "")
            except ClassicRefused as e:
                answers.append(LeaveAnswer(leaver.member_id, leaver.instance_id, e.code, e.message))
                continue
            except RaftkaError as e:
                answers.append(
                    LeaveAnswer(leaver.member_id, leaver.instance_id, int(e.code), e.message)
                )
                continue
            pushes.extend(result.pushes)
            answers.append(LeaveAnswer(member_id, leaver.instance_id, NONE, None))
        return answers, pushes

    def _release_instance(
        self, group_id: str, group: GroupState, instance_id: str, topics: TopicsView
    ) -> None:
        """A static member joining with a new member id replaces the one holding its instance
        id, as in Kafka's classic protocol (a restarted process): the holder leaves as a static
        member does (epoch -2), so the joiner inherits its assignment with no rebalance."""
        holder = group.instance_holder(instance_id)
        if holder is None or group.current(holder).member_epoch == STATIC_LEFT_EPOCH:
            return
        if not group.members[holder].is_classic:
            return  # a consumer-protocol member releases it itself (UNRELEASED_INSTANCE_ID)
        away = gpb.ConsumerGroupHeartbeatRequest(
            group_id=group_id, member_id=holder, member_epoch=STATIC_LEFT_EPOCH
        )
        away.instance_id = instance_id
        self.heartbeats.handle(away, topics, "", "")

    # ---- checks ----

    def _member(self, group_id: str, member_id: str) -> tuple[GroupState, tuple[str, ...]]:
        check_group_id(group_id)
        group = self.store.get(group_id)
        if group is None or member_id not in group.members:
            raise ClassicRefused(
                UNKNOWN_MEMBER_ID,
                f"member {member_id!r} is not in group {group_id!r} (expired, left or never "
                "joined): join again",
            )
        meta = group.members[member_id]
        if not meta.is_classic:
            raise ClassicRefused(
                INCONSISTENT_GROUP_PROTOCOL,
                f"member {member_id!r} of group {group_id!r} joined with the consumer protocol "
                "(ConsumerGroupHeartbeat): it cannot use the classic one",
            )
        return group, meta.classic_protocols

    @staticmethod
    def _check_generation(group: GroupState, member_id: str, generation: int) -> CurrentAssignment:
        current = group.current(member_id)
        if current.member_epoch == STATIC_LEFT_EPOCH or generation != current.member_epoch:
            raise ClassicRefused(
                ILLEGAL_GENERATION,
                f"member {member_id!r} sent generation {generation}, its generation is "
                f"{current.member_epoch}: join again",
            )
        return current

    def _touch(self, group: GroupState, member_id: str) -> None:
        meta = group.members[member_id]
        self.rebalancer.tracker.touch(
            (group.group_id, member_id), self.rebalancer.now_ms + meta.session_timeout_ms
        )


def must_rejoin(group: GroupState, member_id: str) -> bool:
    """Kafka's rule for a classic member of a consumer group: it joins again when the group
    epoch passed its epoch, when it must revoke partitions, or when partitions it waits for
    are free now."""
    current = group.current(member_id)
    if current.member_epoch < (group.epoch or 0):
        return True
    if current.state is MemberState.UNREVOKED_PARTITIONS:
        return True
    if current.state is MemberState.UNRELEASED_PARTITIONS:
        owners = group.owners(excluding=member_id)
        waiting = pairs(group.target(member_id)) - pairs(current.assigned)
        return any(tp not in owners for tp in waiting)
    return False
