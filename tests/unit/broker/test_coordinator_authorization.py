"""Authorization in the GroupService and TransactionService handlers, without a server: a
consumer without READ on its group cannot join, commits and coordinator lookups are refused
per item, verify_only is for nodes, and a transaction needs WRITE on its transactional id."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import pytest

from raftka.broker.groups.service import GroupServicer
from raftka.broker.transactions.service import TransactionServicer
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    OP_DESCRIBE,
    OP_READ,
    OP_WRITE,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.common.security_errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.common.security.fakes import FakeAuthorizer, caller

_T = TypeVar("_T")
ALICE = "User:alice"
GUARD = AccessGuard(
    FakeAuthorizer(
        {
            (ALICE, OP_READ, RESOURCE_GROUP, "billing"),
            (ALICE, OP_DESCRIBE, RESOURCE_GROUP, "billing"),
            (ALICE, OP_WRITE, RESOURCE_TRANSACTIONAL_ID, "t1"),
            (ALICE, OP_WRITE, RESOURCE_TOPIC, "orders"),
        }
    )
)
UNREACHABLE = cast(Any, object())  # a coordinator no refused call may reach


def as_alice(coro: Coroutine[Any, Any, _T]) -> _T:
    async def bound() -> _T:
        token = bind_caller(caller(ALICE))
        try:
            return await coro
        finally:
            reset_caller(token)

    return asyncio.run(asyncio.wait_for(bound(), 10))


class Topic:
    def ensure(self) -> int | None:
        return None


class Clients:
    def saw(self, *args: Any) -> str:
        return ""


def groups() -> GroupServicer:
    s = GroupServicer(coordinator=UNREACHABLE, offsets_topic=cast(Any, Topic()), guard=GUARD)
    s._clients = cast(Any, Clients())
    return s


def txns() -> TransactionServicer:
    s = TransactionServicer(coordinator=UNREACHABLE, marker_writer=UNREACHABLE, guard=GUARD)
    s._clients = cast(Any, Clients())
    return s


def wrapped(cls: type, name: str) -> Any:
    return getattr(cls, name).__wrapped__


def test_a_consumer_without_read_on_the_group_cannot_join() -> None:
    request = gpb.ConsumerGroupHeartbeatRequest(group_id="payroll", member_epoch=0)
    with pytest.raises(GroupAuthorizationFailedError, match="may not READ group 'payroll'"):
        as_alice(groups().heartbeat(request, cast(Any, None)))


def test_offset_commits_need_read_on_the_group_and_the_topic() -> None:
    commit = wrapped(GroupServicer, "OffsetCommit")
    topics = [gpb.OffsetCommitTopic(name="orders", partitions=[gpb.OffsetCommitPartition()])]
    refused = as_alice(
        commit(groups(), gpb.OffsetCommitRequest(group_id="payroll", topics=topics), None)
    )
    assert refused.topics[0].partitions[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    # The group is allowed but the topic is not: refused per partition, nothing committed.
    refused = as_alice(
        commit(groups(), gpb.OffsetCommitRequest(group_id="billing", topics=topics), None)
    )
    assert refused.topics[0].partitions[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED


def test_find_coordinator_and_describe_groups_refuse_per_key() -> None:
    find = wrapped(GroupServicer, "FindCoordinator")
    found = as_alice(find(groups(), gpb.FindCoordinatorRequest(keys=["payroll"]), None))
    assert found.coordinators[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    describe = wrapped(GroupServicer, "DescribeGroups")
    described = as_alice(describe(groups(), gpb.DescribeGroupsRequest(group_ids=["payroll"]), None))
    assert described.groups[0].error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED
    fetch = wrapped(GroupServicer, "OffsetFetch")
    fetched = as_alice(fetch(groups(), gpb.OffsetFetchRequest(group_id="payroll"), None))
    assert fetched.error_code == ErrorCode.GROUP_AUTHORIZATION_FAILED


def test_verify_only_is_for_nodes() -> None:
    add = wrapped(TransactionServicer, "AddPartitionsToTxn")
    request = tpb.AddPartitionsToTxnRequest(
        transactional_id="t1",
        producer_id=1,
        topics=[tpb.TxnTopicPartitions(topic="orders", partitions=[0])],
        verify_only=True,
    )
    with pytest.raises(ClusterAuthorizationFailedError):
        as_alice(add(txns(), request, None))


def test_adding_partitions_needs_write_on_the_id_and_every_topic() -> None:
    add = wrapped(TransactionServicer, "AddPartitionsToTxn")
    topics = [
        tpb.TxnTopicPartitions(topic="orders", partitions=[0]),
        tpb.TxnTopicPartitions(topic="payments", partitions=[0]),
    ]
    answer = as_alice(
        add(
            txns(),
            tpb.AddPartitionsToTxnRequest(transactional_id="t1", producer_id=1, topics=topics),
            None,
        )
    )
    assert [r.error_code for r in answer.results] == [
        ErrorCode.OPERATION_NOT_ATTEMPTED,
        ErrorCode.TOPIC_AUTHORIZATION_FAILED,
    ]
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        as_alice(
            add(
                txns(),
                tpb.AddPartitionsToTxnRequest(transactional_id="t2", producer_id=1, topics=topics),
                None,
            )
        )
    end = wrapped(TransactionServicer, "EndTxn")
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        as_alice(end(txns(), tpb.EndTxnRequest(transactional_id="t2", producer_id=1), None))
