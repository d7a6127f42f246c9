"""OffsetCommit, TxnOffsetCommit, OffsetFetch and OffsetDelete against the store.

A member of a consumer group commits with its current epoch (a fenced or stale member is
refused, so a zombie cannot move the group back); anyone may commit with epoch -1 to a group
with no members (a "simple" group, or an admin's offset reset on an empty consumer group).
A transactional commit writes the same records in the producer's transaction: they are pending
(store.pending) until its marker, invisible to fetch meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable

from raftka.broker.groups.api import GroupConfig, TopicsView
from raftka.broker.groups.batch import RecordBatch
from raftka.broker.groups.rebalance import subscribes_to
from raftka.broker.groups.records import OffsetCommitRecord
from raftka.broker.groups.state import CommittedOffset, GroupState
from raftka.broker.groups.store import GroupStore
from raftka.broker.groups.validation import MAX_ITEMS, check_group_id
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.group_errors import (
    GroupIdNotFoundError,
    GroupSubscribedToTopicError,
    StaleMemberEpochError,
    UnknownMemberIdError,
)
from raftka.common.txn_errors import ProducerFencedError, UnstableOffsetCommitError
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode


def _check_member(group: GroupState | None, member_id: str, member_epoch: int) -> None:
    """The member check shared by commit (member_epoch >= 0) and fetch."""
    if group is None or member_id not in group.members:
        gid = group.group_id if group is not None else "?"
        raise UnknownMemberIdError(
            f"member {member_id!r} is not in group {gid!r}: rejoin before committing"
        )
    epoch = group.current(member_id).member_epoch
    if member_epoch != epoch:
        raise StaleMemberEpochError(
            f"member {member_id!r} sent epoch {member_epoch}, its epoch is {epoch}: commit "
            "refused (the member must catch up with its assignment first)"
        )


def _check_commit_group(store: GroupStore, request: gpb.OffsetCommitRequest) -> None:
    check_group_id(request.group_id)
    total = sum(len(t.partitions) for t in request.topics)
    if total > MAX_ITEMS:
        raise InvalidRequestError(f"the commit holds {total} partitions: at most {MAX_ITEMS}")
    group = store.get(request.group_id)
    if request.member_epoch < 0:
        if group is not None and group.members:
            raise UnknownMemberIdError(
                f"group {request.group_id!r} has {len(group.members)} members: a commit "
                "without membership (member_epoch -1) needs an empty group"
            )
        return
    if group is None or not group.is_consumer:
        raise GroupIdNotFoundError(
            f"group {request.group_id!r} is not a consumer group here: commit with "
            "member_epoch -1 for a group without members"
        )
    _check_member(group, request.member_id, request.member_epoch)


def _partition_error(
    topic: str, part: gpb.OffsetCommitPartition, topics: TopicsView, config: GroupConfig
) -> tuple[int, str] | None:
    count = topics.get(topic)
    if count is None or not 0 <= part.partition < count:
        what = "no such topic" if count is None else f"the topic has {count} partitions"
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{topic}-{part.partition}: {what}"
    if part.offset < 0:
        return ErrorCode.INVALID_REQUEST, f"offset {part.offset} is negative"
    size = len(part.metadata.encode())
    if size > config.offset_metadata_max_bytes:
        return (
            ErrorCode.OFFSET_METADATA_TOO_LARGE,
            f"metadata is {size} bytes: at most {config.offset_metadata_max_bytes}",
        )
    return None


def commit(
    store: GroupStore,
    batch: RecordBatch,
    request: gpb.OffsetCommitRequest,
    *,
    now_ms: int,
    topics: TopicsView,
    config: GroupConfig,
) -> gpb.OffsetCommitResponse:
    try:
        _check_commit_group(store, request)
        group_error: RaftkaError | None = None
    except RaftkaError as e:
        group_error = e
    return _write_offsets(
        batch, request.group_id, request.topics, group_error, now_ms, topics, config
    )


def _check_txn_commit(store: GroupStore, request: gpb.TxnOffsetCommitRequest) -> None:
    """As OffsetCommit's, but the member is checked only when the request names one with an
    epoch (a producer may commit for a group it does not belong to); and a producer epoch older
    than that of the producer's pending offsets here is fenced."""
    check_group_id(request.group_id)
    total = sum(len(t.partitions) for t in request.topics)
    if total > MAX_ITEMS:
        raise InvalidRequestError(f"the commit holds {total} partitions: at most {MAX_ITEMS}")
    if not request.transactional_id:
        raise InvalidRequestError("transactional_id is required: commit inside a transaction")
    if request.producer_id < 0 or request.producer_epoch < 0:
        raise InvalidRequestError(
            f"producer id {request.producer_id} / epoch {request.producer_epoch}: both must be "
            "the non-negative ones InitProducerId (or the last EndTxn) returned"
        )
    pending_epoch = store.pending.epoch_of(request.producer_id)
    if pending_epoch is not None and request.producer_epoch < pending_epoch:
        raise ProducerFencedError(
            f"producer {request.producer_id} sent epoch {request.producer_epoch}, but its "
            f"transaction here has epoch {pending_epoch}: a newer producer took over; close this one"
        )
    if request.member_id and request.member_epoch >= 0:
        group = store.get(request.group_id)
        if group is None or not group.is_consumer:
            raise GroupIdNotFoundError(
                f"group {request.group_id!r} is not a consumer group here: commit without "
                "member_id / with member_epoch -1 for a group you are not a member of"
            )
        _check_member(group, request.member_id, request.member_epoch)


def txn_commit(
    store: GroupStore,
    batch: RecordBatch,
    request: gpb.TxnOffsetCommitRequest,
    *,
    now_ms: int,
    topics: TopicsView,
    config: GroupConfig,
) -> gpb.OffsetCommitResponse:
    """``batch`` writes in the request's producer's transaction: the offsets stay pending."""
    try:
        _check_txn_commit(store, request)
        group_error: RaftkaError | None = None
    except RaftkaError as e:
        group_error = e
    return _write_offsets(
        batch, request.group_id, request.topics, group_error, now_ms, topics, config
    )


def _write_offsets(
    batch: RecordBatch,
    group_id: str,
    request_topics: Iterable[gpb.OffsetCommitTopic],
    group_error: RaftkaError | None,
    now_ms: int,
    topics: TopicsView,
    config: GroupConfig,
) -> gpb.OffsetCommitResponse:
    """Writes every acceptable partition; the others get their error (all of them the group
    error, when there is one)."""
    response = gpb.OffsetCommitResponse()
    for topic in request_topics:
        result = response.topics.add(name=topic.name)
        for part in topic.partitions:
            error: tuple[int, str] | None
            if group_error is not None:
                error = int(group_error.code), str(group_error)
            else:
                error = _partition_error(topic.name, part, topics, config)
            if error is not None:
                result.partitions.add(
                    partition=part.partition,
                    error_code=error[0],
                    error_message=error[1],
                )
                continue
            value = CommittedOffset(part.offset, part.leader_epoch, part.metadata, now_ms)
            batch.write(OffsetCommitRecord(group_id, topic.name, part.partition, value))
            result.partitions.add(partition=part.partition)
    return response


def fetch(store: GroupStore, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
    try:
        check_group_id(request.group_id)
        total = sum(len(t.partitions) for t in request.topics)
        if total > MAX_ITEMS:
            raise InvalidRequestError(f"the fetch names {total} partitions: at most {MAX_ITEMS}")
        group = store.get(request.group_id)
        if request.member_id:
            _check_member(group, request.member_id, request.member_epoch)
    except RaftkaError as e:
        return gpb.OffsetFetchResponse(error_code=e.code, error_message=str(e))
    offsets = group.offsets if group is not None else {}
    response = gpb.OffsetFetchResponse()
    if request.topics:
        wanted = [(t.topic, list(t.partitions)) for t in request.topics]
    else:
        by_topic: dict[str, list[int]] = {}
        for topic, p in sorted(offsets):
            by_topic.setdefault(topic, []).append(p)
        wanted = sorted(by_topic.items())
    if request.require_stable:
        unstable = _unstable(store, request.group_id, wanted if request.topics else None)
        if unstable is not None:
            return gpb.OffsetFetchResponse(error_code=unstable.code, error_message=str(unstable))
    for topic, partitions in wanted:
        out = response.topics.add(name=topic)
        for p in partitions:
            committed = offsets.get((topic, p))
            if committed is None:
                out.partitions.add(partition=p, offset=-1, leader_epoch=-1, commit_timestamp_ms=-1)
            else:
                out.partitions.add(
                    partition=p,
                    offset=committed.offset,
                    leader_epoch=committed.leader_epoch,
                    metadata=committed.metadata,
                    commit_timestamp_ms=committed.commit_timestamp_ms,
                )
    return response


def _unstable(
    store: GroupStore, group_id: str, wanted: list[tuple[str, list[int]]] | None
) -> UnstableOffsetCommitError | None:
    """The error for the requested partitions (None: every partition of the group) that have a
    transactional offset waiting for its marker, or None when there is none."""
    if wanted is None:
        undecided = store.pending.pending_partitions(group_id)
    else:
        undecided = [
            (t, p) for t, ps in wanted for p in ps if store.pending.is_pending(group_id, t, p)
        ]
    if not undecided:
        return None
    shown = ", ".join(f"{t}-{p}" for t, p in undecided[:5])
    more = f" and {len(undecided) - 5} more" if len(undecided) > 5 else ""
    return UnstableOffsetCommitError(
        f"group {group_id!r} has transactional offsets not yet committed or aborted for "
        f"{shown}{more}: retry shortly (require_stable waits for the transaction's end)"
    )


def delete(
    store: GroupStore, batch: RecordBatch, request: gpb.OffsetDeleteRequest
) -> gpb.OffsetDeleteResponse:
    try:
        check_group_id(request.group_id)
        total = sum(len(t.partitions) for t in request.topics)
        if total > MAX_ITEMS:
            raise InvalidRequestError(f"the delete holds {total} partitions: at most {MAX_ITEMS}")
        group = store.get(request.group_id)
        if group is None:
            raise GroupIdNotFoundError(f"group {request.group_id!r} does not exist")
    except RaftkaError as e:
        return gpb.OffsetDeleteResponse(error_code=e.code, error_message=str(e))
    response = gpb.OffsetDeleteResponse()
    for item in request.topics:
        result = response.topics.add(name=item.topic)
        subscribed = subscribes_to(group, item.topic)
        for p in item.partitions:
            if subscribed:
                refused = GroupSubscribedToTopicError(
                    f"a member of group {request.group_id!r} subscribes to {item.topic!r}: "
                    "its offsets stay while it does"
                )
                result.partitions.add(
                    partition=p, error_code=refused.code, error_message=str(refused)
                )
                continue
            if (item.topic, p) in group.offsets:
                batch.write(OffsetCommitRecord(request.group_id, item.topic, p, None))
                group = store.get(request.group_id) or GroupState(request.group_id)
            result.partitions.add(partition=p)
    return response
