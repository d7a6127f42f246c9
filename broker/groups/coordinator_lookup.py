"""Which broker coordinates a group or a transactional id, for any transport.

The coordinator of a key is the leader of the key's partition of an internal topic
(``__consumer_offsets`` for groups, ``__transaction_state`` for transactional ids). Looking
one up creates that topic on first use (COORDINATOR_NOT_AVAILABLE until the image holds it),
checks the key and DESCRIBE on it for the caller, and names the leader's endpoint on the
listener the asking transport serves: the gRPC GroupService answers with the CLIENT listener,
the Kafka listener with the KAFKA one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from raftka.broker.groups.placement import OFFSETS_TOPIC, partition_for
from raftka.broker.groups.validation import check_group_id
from raftka.broker.transactions.api import TRANSACTION_STATE_TOPIC
from raftka.broker.transactions.validation import check_transactional_id
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    OP_DESCRIBE,
    RESOURCE_GROUP,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.v1 import groups_pb2 as gpb

Endpoint = tuple[str, int]


class CoordinatorTopic(Protocol):
    """What a lookup reads of an internal topic (coordinator.internal_topic.InternalTopic)."""

    def ensure(self) -> int | None: ...

    def leader_of(self, partition: int) -> int: ...


@dataclass(frozen=True, slots=True)
class CoordinatorKind:
    """One kind of coordinator key: its internal topic, its name check and its ACL resource."""

    topic: CoordinatorTopic
    topic_name: str
    check: Callable[[str], None]
    resource_type: int


@dataclass(frozen=True, slots=True)
class Located:
    """The coordinator of one key, or why there is none now (``error``)."""

    key: str
    node_id: int = -1
    endpoint: Endpoint | None = None
    partition: int = -1
    error: RaftkaError | None = None


def coordinator_kind(
    key_type: int,
    offsets_topic: CoordinatorTopic | None,
    transaction_topic: CoordinatorTopic | None,
) -> CoordinatorKind:
    """The kind of ``key_type`` (COORDINATOR_TYPE_GROUP 0, COORDINATOR_TYPE_TRANSACTION 1, the
    numbers Kafka uses too); INVALID_REQUEST for another or one this broker does not serve."""
    if key_type == gpb.COORDINATOR_TYPE_GROUP and offsets_topic is not None:
        return CoordinatorKind(offsets_topic, OFFSETS_TOPIC, check_group_id, RESOURCE_GROUP)
    if key_type == gpb.COORDINATOR_TYPE_TRANSACTION and transaction_topic is not None:
        return CoordinatorKind(
            transaction_topic,
            TRANSACTION_STATE_TOPIC,
            check_transactional_id,
            RESOURCE_TRANSACTIONAL_ID,
        )
    raise InvalidRequestError(
        f"key_type {key_type} is not served: use COORDINATOR_TYPE_GROUP (0) or "
        "COORDINATOR_TYPE_TRANSACTION (1)"
    )


def locate(
    keys: Iterable[str],
    kind: CoordinatorKind,
    guard: AccessGuard,
    endpoint_of: Callable[[int], Endpoint | None],
) -> list[Located]:
    """The coordinator of each key, in order. ``endpoint_of(broker_id)``: where the asking
    transport's clients reach that broker (None when they cannot: fenced, unknown, or without
    that listener)."""
    count = kind.topic.ensure()
    found = []
    for key in keys:
        refused = guard.denial(OP_DESCRIBE, kind.resource_type, key)
        if refused is not None:
            found.append(Located(key, error=refused))
        else:
            found.append(_locate_one(key, count, kind, endpoint_of))
    return found


def _locate_one(
    key: str,
    count: int | None,
    kind: CoordinatorKind,
    endpoint_of: Callable[[int], Endpoint | None],
) -> Located:
    partition = -1
    try:
        kind.check(key)
        if count is None:
            raise CoordinatorNotAvailableError(
                f"{kind.topic_name} is being created: retry FindCoordinator shortly"
            )
        partition = partition_for(key, count)
        leader = kind.topic.leader_of(partition)
        endpoint = endpoint_of(leader) if leader >= 0 else None
        if endpoint is None:
            raise CoordinatorNotAvailableError(
                f"{kind.topic_name}-{partition} has no reachable leader now: retry "
                "FindCoordinator shortly"
            )
    except RaftkaError as e:
        return Located(key, partition=partition, error=e)
    return Located(key, node_id=leader, endpoint=endpoint, partition=partition)
