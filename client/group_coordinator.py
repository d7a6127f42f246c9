"""Talking to a group's (or a transactional id's) coordinator: finding it (FindCoordinator on
any broker), calling it with the retries groups.proto prescribes, and reading the offset RPCs'
per-item answers.

Retries, within the caller's deadline:

* NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, or no answer (UNAVAILABLE, a timeout): forget
  the coordinator, find it again, retry there;
* COORDINATOR_LOAD_IN_PROGRESS: retry at the same broker after a backoff.

Everything else is the caller's to handle. Used by the consumer (membership, commits), the
admin client (group operations) and the transactional producer (its transaction coordinator,
``key_type=COORDINATOR_TYPE_TRANSACTION``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypeVar

import grpc
import structlog

from raftka.client.connections import BrokerConnections
from raftka.client.errors import PartitionError
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import group_errors, txn_errors
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    RaftkaError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub

log = structlog.get_logger(__name__)

T = TypeVar("T")

_GROUP_ERRORS: dict[int, type[RaftkaError]] = {
    cls.code: cls
    for cls in vars(group_errors).values()
    if isinstance(cls, type) and issubclass(cls, RaftkaError) and cls is not RaftkaError
}
_GROUP_ERRORS[ErrorCode.COORDINATOR_LOAD_IN_PROGRESS] = CoordinatorLoadInProgressError
_GROUP_ERRORS[ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] = UnknownTopicOrPartitionError
_GROUP_ERRORS[ErrorCode.UNSTABLE_OFFSET_COMMIT] = txn_errors.UnstableOffsetCommitError

REFIND = (
    group_errors.NotCoordinatorError,
    group_errors.CoordinatorNotAvailableError,
    RequestTimedOutError,
)
"""Call failures after which the coordinator is looked up again."""


def group_error(code: int, message: str, where: str = "") -> RaftkaError:
    """A per-item error code as the error class the coordinator would have raised."""
    cls = _GROUP_ERRORS.get(code)
    prefix = f"{where}: " if where else ""
    if cls is None:
        return PartitionError(code, message, where)
    name = ErrorCode.Name(code)  # type: ignore[arg-type]
    return cls.from_wire(f"{prefix}{name}" + (f": {message}" if message else ""))


class GroupCoordinator:
    """One group's (or transactional id's) coordinator, found lazily and re-found when it
    moves."""

    def __init__(
        self,
        group_id: str,
        connections: BrokerConnections,
        brokers: Callable[[], Sequence[str]],
        *,
        request_timeout_s: float,
        retry: RetryPolicy,
        key_type: gpb.CoordinatorType.ValueType = gpb.COORDINATOR_TYPE_GROUP,
    ) -> None:
        """``brokers()``: the broker addresses worth asking FindCoordinator (any will do).
        ``group_id`` is the key: a transactional id with ``key_type`` TRANSACTION."""
        self.group_id = group_id
        self._connections = connections
        self._brokers = brokers
        self._request_timeout_s = request_timeout_s
        self._retry = retry
        self.key_type = key_type
        self._what = "transactional id" if key_type == gpb.COORDINATOR_TYPE_TRANSACTION else "group"
        self.address: str | None = None

    def invalidate(self) -> None:
        if self.address is not None:
            log.info(
                "group_coordinator_lost", key=self.group_id, kind=self._what, address=self.address
            )
        self.address = None

    def stub(self, address: str) -> GroupServiceStub:
        return self._connections.group_stub(address)

    async def find(self, deadline: Deadline) -> str:
        """The coordinator's ``host:port``, asking the brokers until one knows it."""
        attempt = 0
        while self.address is None:
            problems: list[str] = []
            for address in dict.fromkeys(self._brokers()):
                try:
                    found = await self._ask(address)
                except RaftkaError as e:
                    problems.append(f"{address}: {e.message}")
                    continue
                if found is not None:
                    self.address = found
                    log.info(
                        "group_coordinator_found", key=self.group_id, kind=self._what, address=found
                    )
                    return found
                problems.append(f"{address}: coordinator not available yet")
                break
            if deadline.expired():
                raise group_errors.CoordinatorNotAvailableError(
                    f"no coordinator found for {self._what} {self.group_id!r} in time: "
                    + ("; ".join(problems) or "no broker to ask")
                )
            attempt += 1
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))
        return self.address

    async def _ask(self, address: str) -> str | None:
        request = gpb.FindCoordinatorRequest(key_type=self.key_type, keys=[self.group_id])
        try:
            response = await self.stub(address).FindCoordinator(
                request, timeout=self._request_timeout_s
            )
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, address) from None
        for c in response.coordinators:
            if c.key != self.group_id:
                continue
            if c.error_code == ErrorCode.NONE:
                return f"{c.host}:{c.port}"
            if c.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE:
                return None
            raise group_error(c.error_code, c.error_message, f"{self._what} {self.group_id!r}")
        return None

    async def call(self, rpc: Callable[[GroupServiceStub], Awaitable[T]], deadline: Deadline) -> T:
        """``rpc(stub)`` at the coordinator, retried as the module docstring says."""
        return await self.call_at(lambda address: rpc(self.stub(address)), deadline)

    async def call_at(
        self,
        rpc: Callable[[str], Awaitable[T]],
        deadline: Deadline,
        *,
        retry_here: tuple[type[RaftkaError], ...] = (),
        here_backoff_s: float | None = None,
    ) -> T:
        """``rpc(address)`` at the coordinator (any of its services), retried as the module
        docstring says; errors of ``retry_here`` types are retried at the same broker too,
        after ``here_backoff_s`` when given (a short, fixed wait for a state that clears by
        itself within milliseconds) instead of the growing backoff. ``rpc`` may raise a
        RaftkaError for an error code in its answer: it is retried alike."""
        attempt = 0
        while True:
            address = await self.find(deadline)
            try:
                return await rpc(address)
            except grpc.aio.AioRpcError as e:
                error = error_from_rpc(e, address)
            except RaftkaError as e:  # an error the answer carried, raised by ``rpc``
                error = e
            self.note_failure(error)
            if not isinstance(error, (*REFIND, CoordinatorLoadInProgressError, *retry_here)):
                raise error
            if deadline.expired():
                raise error
            attempt += 1
            wait = self._retry.backoff(attempt)
            if here_backoff_s is not None and isinstance(error, retry_here):
                wait = here_backoff_s
            await asyncio.sleep(min(wait, deadline.remaining()))

    def note_failure(self, error: RaftkaError) -> None:
        """A call failed with ``error``: forget the coordinator if it says to look again."""
        if isinstance(error, REFIND):
            self.invalidate()

    @property
    def request_timeout_s(self) -> float:
        return self._request_timeout_s


# ---------------------------------------------------------------------- offset messages


def by_topic(partitions: Iterable[TopicPartition]) -> list[gpb.GroupTopicPartitions]:
    topics: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        topics.setdefault(tp.topic, []).append(tp.partition)
    return [gpb.GroupTopicPartitions(topic=t, partitions=ps) for t, ps in topics.items()]


def from_topics(topics: Iterable[gpb.GroupTopicPartitions]) -> set[TopicPartition]:
    return {TopicPartition(t.topic, p) for t in topics for p in t.partitions}


def commit_request(
    group_id: str,
    member_id: str,
    member_epoch: int,
    offsets: Mapping[TopicPartition, OffsetAndMetadata],
) -> gpb.OffsetCommitRequest:
    request = gpb.OffsetCommitRequest(
        group_id=group_id, member_id=member_id, member_epoch=member_epoch
    )
    topics: dict[str, gpb.OffsetCommitTopic] = {}
    for tp, o in sorted(offsets.items()):
        topic = topics.get(tp.topic)
        if topic is None:
            topic = topics[tp.topic] = request.topics.add(name=tp.topic)
        topic.partitions.add(
            partition=tp.partition,
            offset=o.offset,
            leader_epoch=-1 if o.leader_epoch is None else o.leader_epoch,
            metadata=o.metadata,
        )
    return request


def partition_errors(
    topics: Iterable[gpb.OffsetCommitTopicResult],
) -> dict[TopicPartition, RaftkaError]:
    """The refused partitions of an OffsetCommit or OffsetDelete answer."""
    out: dict[TopicPartition, RaftkaError] = {}
    for t in topics:
        for p in t.partitions:
            if p.error_code != ErrorCode.NONE:
                tp = TopicPartition(t.name, p.partition)
                out[tp] = group_error(p.error_code, p.error_message, str(tp))
    return out


def fetch_request(
    group_id: str,
    partitions: Iterable[TopicPartition] | None,
    member_id: str = "",
    member_epoch: int = -1,
    *,
    require_stable: bool = False,
) -> gpb.OffsetFetchRequest:
    """``partitions`` None: every partition the group has an offset for. ``require_stable``:
    UNSTABLE_OFFSET_COMMIT while a transactional commit of a partition is undecided."""
    return gpb.OffsetFetchRequest(
        group_id=group_id,
        topics=by_topic(partitions or ()),
        member_id=member_id,
        member_epoch=member_epoch if member_id else -1,
        require_stable=require_stable,
    )


def committed_offsets(
    response: gpb.OffsetFetchResponse, group_id: str
) -> dict[TopicPartition, OffsetAndMetadata]:
    """The committed partitions of an OffsetFetch answer (those without one are left out);
    a group-level error raises."""
    if response.error_code != ErrorCode.NONE:
        raise group_error(response.error_code, response.error_message, f"group {group_id!r}")
    out: dict[TopicPartition, OffsetAndMetadata] = {}
    for t in response.topics:
        for p in t.partitions:
            if p.offset >= 0:
                epoch = p.leader_epoch if p.leader_epoch >= 0 else None
                out[TopicPartition(t.name, p.partition)] = OffsetAndMetadata(
                    p.offset, epoch, p.metadata
                )
    return out
