"""Computing PartitionChangeRecords: ISR changes and leader elections (after Kafka's
PartitionChangeBuilder), shared by fencing, controlled shutdown, unfencing and, later,
AlterPartition and preferred-leader elections.

Leader choice. A broker is an *acceptable* leader when the caller's predicate says
so (normally: registered, unfenced, not in controlled shutdown, not the broker being removed).
1. Keep the current leader if it is in the target ISR and acceptable.
2. Otherwise take the first replica, in replica order, that is in the target ISR and acceptable.
3. Otherwise, only if the topic has unclean.leader.election.enable=true, take the first
   acceptable replica even outside the ISR; the ISR becomes [leader] and the leader recovery
   state RECOVERING.
4. Otherwise the partition has no leader (-1).
The ISR is never written empty: when the target ISR would be empty, the current ISR stays (so
the last member stays listed while the leader is -1).

Reassignment (KIP-455). The builder also takes target replicas and adding/removing lists.
Whenever a reassignment is in progress and the ISR minus the removing replicas holds every
target replica (Replicas - removing), it completes it in the same change: Replicas = target,
ISR = ISR - removing, adding and removing cleared; a leader that was being removed loses its
validity, so a new one is elected from the target in replica order. A change whose replica list
drops any old replica also bumps the leader epoch (the record sets ``leader``, possibly to the
same broker), so a removed replica can no longer fetch as a follower of the old epoch.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from raftka.common.errors import UnknownTopicOrPartitionError
from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import (
    NO_LEADER,
    LeaderRecoveryState,
    PartitionState,
    PartitionView,
)
from raftka.common.metadata.records import partition_change_record
from raftka.common.metadata.topic_configs import topic_config_value
from raftka.v1.metadata_pb2 import MetadataRecord

AcceptableLeader = Callable[[BrokerId], bool]


class ElectionType(enum.Enum):
    ONLINE = "online"
    """Keep a valid current leader, else elect the first valid replica."""
    PREFERRED = "preferred"
    """Elect the first replica if it is valid, else behave as ONLINE."""


@dataclass(frozen=True, slots=True)
class PartitionChangeBuilder:
    """Inputs of one partition change; ``build()`` returns the record, or None when the
    partition would not change."""

    topic_id: str
    partition_id: int
    state: PartitionState
    is_acceptable: AcceptableLeader
    target_isr: Sequence[BrokerId] | None = None
    """The ISR wanted (None keeps the current one); the election may still override it."""
    election: ElectionType = ElectionType.ONLINE
    unclean_allowed: bool = False
    target_recovery_state: LeaderRecoveryState | None = None
    target_replicas: Sequence[BrokerId] | None = None
    """The replica list wanted (None keeps the current one); must hold the target ISR."""
    target_adding: Sequence[BrokerId] | None = None
    target_removing: Sequence[BrokerId] | None = None

    def build(self) -> MetadataRecord | None:
        state = self.state
        replicas = tuple(state.replicas if self.target_replicas is None else self.target_replicas)
        adding = tuple(state.adding_replicas if self.target_adding is None else self.target_adding)
        removing = tuple(
            state.removing_replicas if self.target_removing is None else self.target_removing
        )
        isr = list(state.isr if self.target_isr is None else self.target_isr)
        recovery = (
            state.leader_recovery_state
            if self.target_recovery_state is None
            else self.target_recovery_state
        )
        if adding or removing:
            target = [r for r in replicas if r not in removing]
            if set(target) <= set(isr) - set(removing):
                replicas = tuple(target)
                isr = [b for b in isr if b not in removing]
                adding = removing = ()
        leader = self._clean_leader(replicas, isr)
        if leader == NO_LEADER and self.unclean_allowed:
            leader = next((r for r in replicas if self.is_acceptable(r)), NO_LEADER)
            if leader != NO_LEADER:
                isr = [leader]
                recovery = LeaderRecoveryState.RECOVERING
        if not isr:
            isr = [b for b in state.isr if b in replicas]
        bump_leader_epoch = not set(state.replicas) <= set(replicas)
        return self._record(
            replicas, adding, removing, tuple(isr), leader, recovery, bump_leader_epoch
        )

    def _valid(self, broker: BrokerId, isr: Sequence[BrokerId]) -> bool:
        return broker != NO_LEADER and broker in isr and self.is_acceptable(broker)

    def _clean_leader(self, replicas: Sequence[BrokerId], isr: Sequence[BrokerId]) -> BrokerId:
        state = self.state
        preferred = replicas[0] if replicas else NO_LEADER
        if self.election is ElectionType.PREFERRED and self._valid(preferred, isr):
            return preferred
        if self._valid(state.leader, isr):
            return state.leader
        return next((r for r in replicas if self._valid(r, isr)), NO_LEADER)

    def _record(
        self,
        replicas: tuple[BrokerId, ...],
        adding: tuple[BrokerId, ...],
        removing: tuple[BrokerId, ...],
        isr: tuple[BrokerId, ...],
        leader: BrokerId,
        recovery: LeaderRecoveryState,
        bump_leader_epoch: bool,
    ) -> MetadataRecord | None:
        state = self.state
        changed = {
            "replicas": replicas if replicas != state.replicas else None,
            "adding_replicas": adding if adding != state.adding_replicas else None,
            "removing_replicas": removing if removing != state.removing_replicas else None,
            "isr": isr if isr != state.isr else None,
        }
        new_leader = leader if leader != state.leader or bump_leader_epoch else None
        new_recovery = int(recovery) if recovery != state.leader_recovery_state else None
        if all(v is None for v in changed.values()) and new_leader is None and new_recovery is None:
            return None
        return partition_change_record(
            self.topic_id,
            self.partition_id,
            isr=changed["isr"],
            leader=new_leader,
            replicas=changed["replicas"],
            removing_replicas=changed["removing_replicas"],
            adding_replicas=changed["adding_replicas"],
            leader_recovery_state=new_recovery,
        )


def acceptable_leaders(
    image: MetadataImage,
    *,
    excluding: Iterable[int] = (),
    including: Iterable[int] = (),
) -> AcceptableLeader:
    """Active brokers of ``image``, minus ``excluding`` (being fenced or shut down), plus
    ``including`` (being unfenced in the same batch)."""
    excluded = frozenset(excluding)
    included = frozenset(including) - excluded

    def is_acceptable(broker: BrokerId) -> bool:
        if broker in excluded:
            return False
        return broker in included or image.is_active(broker)

    return is_acceptable


def find_partition(image: MetadataImage, topic_name: str, partition_id: int) -> PartitionView:
    """The named partition; raises UnknownTopicOrPartitionError."""
    topic = image.topic(topic_name)
    if topic is None:
        raise UnknownTopicOrPartitionError(f"topic {topic_name!r} does not exist")
    state = topic.partitions.get(partition_id)
    if state is None:
        raise UnknownTopicOrPartitionError(f"topic {topic_name!r} has no partition {partition_id}")
    return PartitionView(topic_name, topic.topic_id, partition_id, state)


def unclean_election_enabled(image: MetadataImage, topic_name: str) -> bool:
    return (
        topic_config_value(image.topic_configs(topic_name), "unclean.leader.election.enable")
        is True
    )


ChangeBuild = Callable[[str, int, PartitionState, bool], MetadataRecord | None]
"""Builds one partition's change (topic id, partition id, state, unclean election allowed),
or None when it needs none."""


def _plan_changes(
    image: MetadataImage,
    wanted: Callable[[PartitionState], bool],
    build: ChangeBuild,
    limit: int | None,
) -> list[MetadataRecord]:
    """``build`` for every partition ``wanted`` picks, in topic and partition order; with
    ``limit``, at most that many changes (plan again after applying them for the rest)."""
    records: list[MetadataRecord] = []
    topics = image.topics
    for name in sorted(topics):
        topic = topics[name]
        partitions = topic.partitions
        unclean: bool | None = None
        for partition_id in sorted(partitions):
            state = partitions[partition_id]
            if not wanted(state):
                continue
            if unclean is None:
                unclean = unclean_election_enabled(image, name)
            record = build(topic.topic_id, partition_id, state, unclean)
            if record is not None:
                records.append(record)
                if limit is not None and len(records) >= limit:
                    return records
    return records


def remove_from_isrs(
    image: MetadataImage, broker_id: BrokerId, limit: int | None = None
) -> list[MetadataRecord]:
    """Changes that take ``broker_id`` out of every ISR and move its leaderships away, for
    fencing, controlled shutdown or a new incarnation: with ``limit``, at most that many (the
    first ones in topic and partition order; plan again after applying them for the rest)."""
    is_acceptable = acceptable_leaders(image, excluding=[broker_id])

    def build(
        topic_id: str, partition_id: int, state: PartitionState, unclean: bool
    ) -> MetadataRecord | None:
        return PartitionChangeBuilder(
            topic_id,
            partition_id,
            state,
            is_acceptable,
            target_isr=[b for b in state.isr if b != broker_id],
            unclean_allowed=unclean,
        ).build()

    return _plan_changes(image, lambda state: broker_id in state.isr, build, limit)


def elect_leaders_for(
    image: MetadataImage, broker_id: BrokerId, limit: int | None = None
) -> list[MetadataRecord]:
    """Elections for leaderless partitions that ``broker_id`` (being unfenced in the same
    batch) can now lead: those whose ISR holds it, or any it replicates when the topic allows
    unclean election. With ``limit``, at most that many (as :func:`remove_from_isrs`)."""
    is_acceptable = acceptable_leaders(image, including=[broker_id])

    def build(
        topic_id: str, partition_id: int, state: PartitionState, unclean: bool
    ) -> MetadataRecord | None:
        if broker_id not in state.isr and not unclean:
            return None
        return PartitionChangeBuilder(
            topic_id, partition_id, state, is_acceptable, unclean_allowed=unclean
        ).build()

    return _plan_changes(
        image, lambda state: not state.has_leader and broker_id in state.replicas, build, limit
    )
