"""ListGroups, DescribeGroups and DeleteGroups against the store."""

from __future__ import annotations

from collections.abc import Sequence

from raftka.broker.groups.api import GroupConfig
from raftka.broker.groups.batch import RecordBatch
from raftka.broker.groups.rebalance import group_assignor, to_assignment
from raftka.broker.groups.records import (
    CurrentAssignmentRecord,
    GroupMetadataRecord,
    OffsetCommitRecord,
    PartitionMetadataRecord,
    TargetMemberRecord,
    TargetMetadataRecord,
)
from raftka.broker.groups.store import GroupStore
from raftka.broker.groups.validation import check_group_id
from raftka.common.errors import RaftkaError
from raftka.common.group_errors import GroupIdNotFoundError, NonEmptyGroupError
from raftka.v1 import groups_pb2 as gpb


def list_groups(store: GroupStore, request: gpb.ListGroupsRequest) -> list[gpb.ListedGroup]:
    wanted = set(request.states_filter)
    out = []
    for gid in sorted(store.groups):
        group = store.groups[gid]
        state = group.state()
        if not wanted or state in wanted:
            out.append(gpb.ListedGroup(group_id=gid, group_type=group.group_type, state=state))
    return out


def describe(store: GroupStore, group_id: str, config: GroupConfig) -> gpb.DescribedGroup:
    try:
        check_group_id(group_id)
        group = store.get(group_id)
        if group is None:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
    except RaftkaError as e:
        return gpb.DescribedGroup(group_id=group_id, error_code=e.code, error_message=str(e))
    out = gpb.DescribedGroup(
        group_id=group_id,
        state=group.state(),
        group_epoch=group.epoch or 0,
        assignment_epoch=group.assignment_epoch or 0,
        assignor=group_assignor(group, config.default_assignor) if group.is_consumer else "",
        group_type=group.group_type,
    )
    for member_id in sorted(group.members):
        meta = group.members[member_id]
        current = group.current(member_id)
        out.members.add(
            member_id=member_id,
            instance_id=meta.instance_id,
            rack_id=meta.rack_id,
            member_epoch=current.member_epoch,
            client_id=meta.client_id,
            client_host=meta.client_host,
            subscribed_topic_names=list(meta.subscribed_topic_names),
            subscribed_topic_regex=meta.subscribed_topic_regex,
            assignment=to_assignment(current.assigned),
            target_assignment=to_assignment(group.target(member_id)),
            member_state=current.state.value,
            classic=meta.is_classic,
        )
    return out


def delete_groups(
    store: GroupStore, batch: RecordBatch, group_ids: Sequence[str]
) -> list[gpb.GroupResult]:
    results = []
    for gid in group_ids:
        try:
            check_group_id(gid)
            group = store.get(gid)
            if group is None:
                raise GroupIdNotFoundError(f"group {gid!r} does not exist")
            if group.members:
                raise NonEmptyGroupError(
                    f"group {gid!r} has {len(group.members)} members: they must leave first"
                )
        except RaftkaError as e:
            results.append(gpb.GroupResult(group_id=gid, error_code=e.code, error_message=str(e)))
            continue
        for topic, p in sorted(group.offsets):
            batch.write(OffsetCommitRecord(gid, topic, p, None))
        for member_id in sorted(set(group.currents)):
            batch.write(CurrentAssignmentRecord(gid, member_id, None))
        for member_id in sorted(set(group.targets)):
            batch.write(TargetMemberRecord(gid, member_id, None))
        if group.partition_metadata is not None:
            batch.write(PartitionMetadataRecord(gid, None))
        if group.assignment_epoch is not None:
            batch.write(TargetMetadataRecord(gid, None))
        if group.epoch is not None:
            batch.write(GroupMetadataRecord(gid, None))
        results.append(gpb.GroupResult(group_id=gid))
    return results
