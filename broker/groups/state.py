"""The coordinator's state: groups, members, assignments and committed offsets.

Everything here is a function of the latest value of every ``__consumer_offsets`` key
(``store.GroupStore.apply`` is the only writer), so a replay rebuilds it exactly. Timers and
what each member last reported or was last told live in the shard, not here.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

#: topic -> partitions, never holding an empty set.
TopicPartitions = Mapping[str, frozenset[int]]

EMPTY: TopicPartitions = {}

#: A static member's epoch while it is away (sent member_epoch -2).
STATIC_LEFT_EPOCH = -2


class MemberState(enum.Enum):
    """Reconciliation states (Kafka's CurrentAssignmentBuilder)."""

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True, slots=True)
class MemberMetadata:
    instance_id: str = ""
    rack_id: str = ""
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: tuple[str, ...] = ()  # sorted, unique
    subscribed_topic_regex: str = ""
    rebalance_timeout_ms: int = 0
    session_timeout_ms: int = 0
    server_assignor: str = ""
    #: A classic member's (JoinGroup) protocol names, preferred first; () for the consumer
    #: protocol. Classic members are reconciled only in their own JoinGroup.
    classic_protocols: tuple[str, ...] = ()

    @property
    def is_classic(self) -> bool:
        return bool(self.classic_protocols)


@dataclass(frozen=True, slots=True)
class CurrentAssignment:
    member_epoch: int = 0
    previous_member_epoch: int = 0
    state: MemberState = MemberState.STABLE
    assigned: TopicPartitions = field(default_factory=dict)
    pending_revocation: TopicPartitions = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp_ms: int


class GroupState:
    """One group's records, as applied."""

    __slots__ = (
        "assignment_epoch",
        "currents",
        "epoch",
        "group_id",
        "members",
        "offsets",
        "partition_metadata",
        "targets",
    )

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.epoch: int | None = None  # None: not (or no longer) a consumer group
        self.assignment_epoch: int | None = None
        self.partition_metadata: dict[str, int] | None = None
        self.members: dict[str, MemberMetadata] = {}
        self.targets: dict[str, TopicPartitions] = {}
        self.currents: dict[str, CurrentAssignment] = {}
        self.offsets: dict[tuple[str, int], CommittedOffset] = {}

    @property
    def is_consumer(self) -> bool:
        return self.epoch is not None

    @property
    def group_type(self) -> str:
        return "consumer" if self.is_consumer else "simple"

    def holds_nothing(self) -> bool:
        return (
            self.epoch is None
            and self.assignment_epoch is None
            and self.partition_metadata is None
            and not self.members
            and not self.targets
            and not self.currents
            and not self.offsets
        )

    def current(self, member_id: str) -> CurrentAssignment:
        return self.currents.get(member_id) or CurrentAssignment()

    def target(self, member_id: str) -> TopicPartitions:
        return self.targets.get(member_id, EMPTY)

    def state(self) -> str:
        """ "empty", "assigning", "reconciling" or "stable" (ListGroups / DescribeGroups)."""
        if not self.members:
            return "empty"
        if (self.epoch or 0) > (self.assignment_epoch or 0):
            return "assigning"
        for member_id in self.members:
            current = self.current(member_id)
            if (
                current.state is not MemberState.STABLE
                or current.member_epoch != self.assignment_epoch
                or not same(current.assigned, self.target(member_id))
            ):
                return "reconciling"
        return "stable"

    def instance_holder(self, instance_id: str) -> str | None:
        for member_id, meta in self.members.items():
            if meta.instance_id == instance_id:
                return member_id
        return None

    def owners(self, *, excluding: str | None = None) -> dict[tuple[str, int], str]:
        """Every partition some member owns or must still release -> that member."""
        owned: dict[tuple[str, int], str] = {}
        for member_id, current in self.currents.items():
            if member_id == excluding or member_id not in self.members:
                continue
            for topic_partitions in (current.assigned, current.pending_revocation):
                for topic, partitions in topic_partitions.items():
                    for p in partitions:
                        owned[(topic, p)] = member_id
        return owned


def normalize(pairs: Iterable[tuple[str, int]]) -> dict[str, frozenset[int]]:
    """(topic, partition) pairs -> TopicPartitions."""
    out: dict[str, set[int]] = {}
    for topic, p in pairs:
        out.setdefault(topic, set()).add(p)
    return {t: frozenset(ps) for t, ps in sorted(out.items()) if ps}


def pairs(topic_partitions: TopicPartitions) -> set[tuple[str, int]]:
    return {(t, p) for t, ps in topic_partitions.items() for p in ps}


def count(topic_partitions: TopicPartitions) -> int:
    return sum(len(ps) for ps in topic_partitions.values())


def same(a: TopicPartitions, b: TopicPartitions) -> bool:
    return {t: ps for t, ps in a.items() if ps} == {t: ps for t, ps in b.items() if ps}


def as_dict(topic_partitions: Mapping[str, Iterable[int]]) -> dict[str, frozenset[int]]:
    return {t: frozenset(ps) for t, ps in sorted(topic_partitions.items()) if ps}
