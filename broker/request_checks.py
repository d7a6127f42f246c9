"""Checks and error answers shared by the BrokerService's request handlers (service.py,
produce_handler.py, fetch_handler.py): each partition named once, optional epoch fields, the
topics a caller may not touch, and how a per-partition error goes into its result."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from raftka.broker.partition import FencedLeaderEpochError, NotLeaderOrFollowerError
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.rpc.fetch_wire import FetchResult, LeaderHint
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import RESOURCE_TOPIC
from raftka.v1 import broker_pb2 as pb

NOTHING_REFUSED: Mapping[str, RaftkaError] = MappingProxyType({})


def set_error(
    result: pb.PartitionProduceResult | FetchResult | pb.ListOffsetsResult,
    error: RaftkaError,
) -> None:
    """Record a per-partition error: its code, its message and, when this broker is not the
    leader, the leader it knows (Produce and Fetch results)."""
    result.error_code = error.code
    result.error_message = error.message
    if not isinstance(error, NotLeaderOrFollowerError | FencedLeaderEpochError):
        return
    if isinstance(result, FetchResult):
        result.current_leader = LeaderHint(error.leader_id, error.leader_epoch)
    elif isinstance(result, pb.PartitionProduceResult):
        result.current_leader.CopyFrom(
            pb.LeaderHint(leader_id=error.leader_id, leader_epoch=error.leader_epoch)
        )


def require_distinct(partitions: Iterable[tuple[str, int]], request: str) -> None:
    """A request names each partition at most once (one answer per partition, and no way to
    make the broker read or write the same partition many times for one request)."""
    seen: set[tuple[str, int]] = set()
    for tp in partitions:
        if tp in seen:
            raise InvalidRequestError(
                f"{request} names {tp[0]}-{tp[1]} more than once: name each partition once"
            )
        seen.add(tp)


def optional_epoch(message: pb.FetchPartition | pb.ListOffsetsPartition, field: str) -> int | None:
    """An optional epoch field: None when unset."""
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[arg-type]


def topic_refusals(
    guard: AccessGuard, operation: int, topics: Iterable[str]
) -> dict[str, RaftkaError]:
    """The topics among ``topics`` the caller may not ``operation``, with their errors."""
    if not guard.enabled:
        return {}
    refused = {t: guard.denial(operation, RESOURCE_TOPIC, t) for t in set(topics)}
    return {t: e for t, e in refused.items() if e is not None}
