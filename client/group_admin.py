"""Consumer group administration (what Kafka's kafka-consumer-groups does), over the brokers'
GroupService: list, describe (members, assignments, committed offsets, end offsets and lag),
reset offsets, delete groups, delete committed offsets.

AsyncAdmin (``admin.py``) exposes these; this module needs only broker addresses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import grpc

from raftka.client.connections import BrokerConnections
from raftka.client.errors import PartitionError
from raftka.client.group_coordinator import (
    GroupCoordinator,
    by_topic,
    commit_request,
    committed_offsets,
    fetch_request,
    from_topics,
    group_error,
    partition_errors,
)
from raftka.client.metadata_cache import MetadataCache
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import group_errors
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.v1 import broker_pb2 as pb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub

EARLIEST, LATEST = -2, -1

ResetKind = Literal["earliest", "latest", "timestamp", "shift", "offset"]
RESET_KINDS: tuple[str, ...] = ("earliest", "latest", "timestamp", "shift", "offset")


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    group_type: str
    state: str
    coordinator: str
    """The broker that listed it (its coordinator)."""


@dataclass(frozen=True, slots=True)
class MemberDescription:
    member_id: str
    instance_id: str
    client_id: str
    client_host: str
    member_epoch: int
    member_state: str
    subscribed_topics: tuple[str, ...]
    subscribed_regex: str
    assignment: frozenset[TopicPartition]
    target_assignment: frozenset[TopicPartition]


@dataclass(frozen=True, slots=True)
class PartitionLag:
    partition: TopicPartition
    committed: int | None
    end_offset: int | None
    member_id: str
    """The member that owns it now, or ""."""

    @property
    def lag(self) -> int | None:
        if self.committed is None or self.end_offset is None:
            return None
        return max(0, self.end_offset - self.committed)


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str
    group_type: str
    group_epoch: int
    assignment_epoch: int
    assignor: str
    coordinator: str
    members: tuple[MemberDescription, ...]
    offsets: tuple[PartitionLag, ...]


@dataclass(frozen=True, slots=True)
class ResetSpec:
    """Where to move a group's offsets: ``earliest``, ``latest``, ``timestamp`` (``value`` ms
    since the epoch: the first record at or after it, else the end), ``shift`` (``value``
    records from the committed offset, clamped to the log) or ``offset`` (``value``, clamped)."""

    kind: ResetKind
    value: int = 0

    def __post_init__(self) -> None:
        if self.kind not in RESET_KINDS:
            raise InvalidRequestError(
                f"reset kind {self.kind!r}: use one of {', '.join(RESET_KINDS)}"
            )
        if self.kind in ("timestamp", "offset") and self.value < 0:
            raise InvalidRequestError(f"reset to {self.kind} {self.value}: must be >= 0")


@dataclass(frozen=True, slots=True)
class OffsetReset:
    partition: TopicPartition
    current: int | None
    """The committed offset before the reset, or None."""
    new: int


class GroupAdmin:
    def __init__(
        self, metadata: MetadataCache, connections: BrokerConnections, *, timeout_s: float
    ) -> None:
        self._metadata = metadata
        self._connections = connections
        self._timeout_s = timeout_s
        self._retry = RetryPolicy()

    def _brokers(self) -> list[str]:
        return [*self._metadata.brokers.values(), *self._metadata.bootstrap]

    def _coordinator(self, group_id: str) -> GroupCoordinator:
        return GroupCoordinator(
            group_id,
            self._connections,
            self._brokers,
            request_timeout_s=self._timeout_s,
            retry=self._retry,
        )

    def _deadline(self) -> Deadline:
        return Deadline(self._timeout_s)

    # ------------------------------------------------------------------ list and describe

    async def list_groups(self, states: Sequence[str] = ()) -> list[ListedGroup]:
        """Every group of the cluster (each broker lists those it coordinates)."""
        await self._metadata.refresh()
        addresses = sorted(set(self._metadata.brokers.values()))
        request = gpb.ListGroupsRequest(states_filter=list(states))

        async def ask(address: str) -> list[ListedGroup] | RaftkaError:
            try:
                response = await self._connections.group_stub(address).ListGroups(
                    request, timeout=self._timeout_s
                )
            except grpc.aio.AioRpcError as e:
                return error_from_rpc(e, address)
            return [
                ListedGroup(g.group_id, g.group_type, g.state, address) for g in response.groups
            ]

        answers = await asyncio.gather(*(ask(a) for a in addresses))
        failed = [a for a in answers if isinstance(a, RaftkaError)]
        if failed and len(failed) == len(answers):
            raise failed[0]
        merged: dict[str, ListedGroup] = {}
        for answer in answers:
            if not isinstance(answer, RaftkaError):
                for g in answer:
                    merged.setdefault(g.group_id, g)
        if failed:
            raise RaftkaError(
                f"{len(failed)} of {len(answers)} brokers did not list their groups "
                f"({failed[0].message}); the groups they coordinate are missing: "
                + ", ".join(sorted(merged))
            )
        return [merged[g] for g in sorted(merged)]

    async def describe_group(self, group_id: str) -> GroupDescription:
        """State, members and their assignments, and per partition with a committed offset
        or an owner: the committed offset, the end offset (high watermark) and the lag."""
        coordinator = self._coordinator(group_id)
        request = gpb.DescribeGroupsRequest(group_ids=[group_id])
        response = await coordinator.call(
            functools.partial(_describe, request=request, timeout_s=self._timeout_s),
            self._deadline(),
        )
        (g,) = response.groups
        if g.error_code != ErrorCode.NONE:
            raise group_error(g.error_code, g.error_message, f"group {group_id!r}")
        members = tuple(
            MemberDescription(
                m.member_id,
                m.instance_id,
                m.client_id,
                m.client_host,
                m.member_epoch,
                m.member_state,
                tuple(m.subscribed_topic_names),
                m.subscribed_topic_regex,
                frozenset(from_topics(m.assignment.topic_partitions)),
                frozenset(from_topics(m.target_assignment.topic_partitions)),
            )
            for m in g.members
        )
        committed = await self.committed(group_id, coordinator=coordinator)
        owner = {tp: m.member_id for m in members for tp in m.assignment}
        partitions = sorted(set(committed) | set(owner))
        ends = await self.list_offsets({tp: LATEST for tp in partitions}, strict=False)
        offsets = tuple(
            PartitionLag(
                tp,
                committed[tp].offset if tp in committed else None,
                ends.get(tp),
                owner.get(tp, ""),
            )
            for tp in partitions
        )
        return GroupDescription(
            g.group_id,
            g.state,
            g.group_type,
            g.group_epoch,
            g.assignment_epoch,
            g.assignor,
            coordinator.address or "",
            members,
            offsets,
        )

    async def committed(
        self,
        group_id: str,
        partitions: Iterable[TopicPartition] | None = None,
        *,
        coordinator: GroupCoordinator | None = None,
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (of ``partitions``, or all of them)."""
        coordinator = coordinator or self._coordinator(group_id)
        request = fetch_request(group_id, partitions)
        response = await coordinator.call(
            functools.partial(_fetch, request=request, timeout_s=self._timeout_s),
            self._deadline(),
        )
        return committed_offsets(response, group_id)

    # ------------------------------------------------------------------ changes

    async def reset_offsets(
        self,
        group_id: str,
        spec: ResetSpec,
        partitions: Iterable[TopicPartition | str],
        *,
        dry_run: bool = True,
    ) -> list[OffsetReset]:
        """Move the group's committed offsets of ``partitions`` (a topic name stands for all
        its partitions) as ``spec`` says. Refused (NonEmptyGroupError) while the group has
        members: stop its consumers first. ``dry_run`` (the default) only computes the plan."""
        description = await self._describe_or_none(group_id)
        if description is not None and description.members:
            ids = ", ".join(m.member_id for m in description.members)
            raise group_errors.NonEmptyGroupError(
                f"group {group_id!r} has {len(description.members)} active member(s) ({ids}): "
                "offsets can only be reset while the group is empty; stop its consumers "
                "(or wait for their session timeout) and try again"
            )
        targets = await self._expand(partitions)
        current = await self.committed(group_id, targets)
        earliest = await self.list_offsets(dict.fromkeys(targets, EARLIEST))
        latest = await self.list_offsets(dict.fromkeys(targets, LATEST))
        found: dict[TopicPartition, int] = {}
        if spec.kind == "timestamp":
            found = await self.list_offsets(dict.fromkeys(targets, spec.value), strict=False)
        plan: list[OffsetReset] = []
        for tp in targets:
            low, high = earliest[tp], latest[tp]
            now = current[tp].offset if tp in current else None
            if spec.kind == "earliest":
                new = low
            elif spec.kind == "latest":
                new = high
            elif spec.kind == "timestamp":
                new = found.get(tp, high)
            elif spec.kind == "shift":
                new = (now if now is not None else low) + spec.value
            else:
                new = spec.value
            plan.append(OffsetReset(tp, now, min(max(new, low), high)))
        if not dry_run and plan:
            offsets = {r.partition: OffsetAndMetadata(r.new) for r in plan}
            request = commit_request(group_id, "", -1, offsets)
            response = await self._coordinator(group_id).call(
                functools.partial(_commit, request=request, timeout_s=self._timeout_s),
                self._deadline(),
            )
            errors = partition_errors(response.topics)
            if errors:
                raise next(iter(errors.values()))
        return plan

    async def delete_groups(self, group_ids: Sequence[str]) -> dict[str, RaftkaError | None]:
        """Delete each group (with its committed offsets): None where it worked, else why not
        (NonEmptyGroupError while it has members, GroupIdNotFoundError)."""
        results: dict[str, RaftkaError | None] = {}
        for group_id in group_ids:
            request = gpb.DeleteGroupsRequest(group_ids=[group_id])
            try:
                response = await self._coordinator(group_id).call(
                    functools.partial(_delete, request=request, timeout_s=self._timeout_s),
                    self._deadline(),
                )
            except RaftkaError as e:
                results[group_id] = e
                continue
            (r,) = response.results
            results[group_id] = (
                None
                if r.error_code == ErrorCode.NONE
                else group_error(r.error_code, r.error_message, f"group {group_id!r}")
            )
        return results

    async def delete_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition | str]
    ) -> dict[TopicPartition, RaftkaError | None]:
        """Delete the group's committed offsets of ``partitions``: per partition, None or
        why not (GroupSubscribedToTopicError while a member subscribes to the topic)."""
        targets = await self._expand(partitions)
        request = gpb.OffsetDeleteRequest(group_id=group_id, topics=by_topic(targets))
        response = await self._coordinator(group_id).call(
            functools.partial(_offset_delete, request=request, timeout_s=self._timeout_s),
            self._deadline(),
        )
        if response.error_code != ErrorCode.NONE:
            raise group_error(response.error_code, response.error_message, f"group {group_id!r}")
        errors = partition_errors(response.topics)
        return {tp: errors.get(tp) for tp in targets}

    # ------------------------------------------------------------------ helpers

    async def _describe_or_none(self, group_id: str) -> GroupDescription | None:
        try:
            return await self.describe_group(group_id)
        except group_errors.GroupIdNotFoundError:
            return None

    async def _expand(self, partitions: Iterable[TopicPartition | str]) -> list[TopicPartition]:
        out: list[TopicPartition] = []
        for item in partitions:
            if isinstance(item, str):
                info = await self._metadata.topic(item, self._deadline())
                out += [TopicPartition(item, p.partition) for p in info.partitions]
            else:
                out.append(TopicPartition(*item))
        if not out:
            raise InvalidRequestError("no partitions given: name a topic or topic partitions")
        return sorted(dict.fromkeys(out))

    async def list_offsets(
        self, timestamps: Mapping[TopicPartition, int], *, strict: bool = True
    ) -> dict[TopicPartition, int]:
        """ListOffsets at each leader (-2 earliest, -1 latest, else a timestamp). Partitions
        with no answer (or no record at the timestamp) are left out, unless ``strict`` and the
        failure is an error, which raises."""
        pending = dict(timestamps)
        found: dict[TopicPartition, int] = {}
        deadline = self._deadline()
        attempt = 0
        while pending:
            with contextlib.suppress(RaftkaError):
                await self._metadata.refresh({tp.topic for tp in pending})
            errors: dict[TopicPartition, RaftkaError] = {}
            by_leader: dict[str, list[TopicPartition]] = {}
            for tp in pending:
                address = self._metadata.leader_address(tp.topic, tp.partition)
                if address is None:
                    errors[tp] = PartitionError(
                        ErrorCode.LEADER_NOT_AVAILABLE, "no known leader", tp.topic, tp.partition
                    )
                else:
                    by_leader.setdefault(address, []).append(tp)
            for address, tps in by_leader.items():
                request = pb.ListOffsetsRequest(
                    topics=[
                        pb.ListOffsetsTopic(
                            topic=topic,
                            partitions=[
                                pb.ListOffsetsPartition(
                                    partition=tp.partition, timestamp=pending[tp]
                                )
                                for tp in tps
                                if tp.topic == topic
                            ],
                        )
                        for topic in sorted({tp.topic for tp in tps})
                    ]
                )
                try:
                    response = await self._connections.stub(address).ListOffsets(
                        request, timeout=self._timeout_s
                    )
                except grpc.aio.AioRpcError as e:
                    errors.update(dict.fromkeys(tps, error_from_rpc(e, address)))
                    continue
                for r in response.results:
                    tp = TopicPartition(r.topic, r.partition)
                    if r.error_code == ErrorCode.NONE:
                        if r.offset >= 0:
                            found[tp] = r.offset
                    else:
                        errors[tp] = PartitionError(
                            r.error_code, r.error_message, r.topic, r.partition
                        )
            pending = {tp: pending[tp] for tp in errors}
            if not pending:
                break
            if deadline.expired() or not all(
                getattr(e, "retriable", True) for e in errors.values()
            ):
                if strict:
                    raise next(iter(errors.values()))
                break
            attempt += 1
            await asyncio.sleep(min(self._retry.backoff(attempt), deadline.remaining()))
        return found


async def _describe(
    stub: GroupServiceStub, *, request: gpb.DescribeGroupsRequest, timeout_s: float
) -> gpb.DescribeGroupsResponse:
    response: gpb.DescribeGroupsResponse = await stub.DescribeGroups(request, timeout=timeout_s)
    for g in response.groups:  # the coordinator moved between find and ask: look again
        if g.error_code in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS):
            raise _as_rpc_error(g.error_code, g.error_message)
    return response


async def _fetch(
    stub: GroupServiceStub, *, request: gpb.OffsetFetchRequest, timeout_s: float
) -> gpb.OffsetFetchResponse:
    response: gpb.OffsetFetchResponse = await stub.OffsetFetch(request, timeout=timeout_s)
    return response


async def _commit(
    stub: GroupServiceStub, *, request: gpb.OffsetCommitRequest, timeout_s: float
) -> gpb.OffsetCommitResponse:
    response: gpb.OffsetCommitResponse = await stub.OffsetCommit(request, timeout=timeout_s)
    return response


async def _delete(
    stub: GroupServiceStub, *, request: gpb.DeleteGroupsRequest, timeout_s: float
) -> gpb.DeleteGroupsResponse:
    response: gpb.DeleteGroupsResponse = await stub.DeleteGroups(request, timeout=timeout_s)
    for r in response.results:
        if r.error_code in (ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS):
            raise _as_rpc_error(r.error_code, r.error_message)
    return response


async def _offset_delete(
    stub: GroupServiceStub, *, request: gpb.OffsetDeleteRequest, timeout_s: float
) -> gpb.OffsetDeleteResponse:
    response: gpb.OffsetDeleteResponse = await stub.OffsetDelete(request, timeout=timeout_s)
    return response


def _as_rpc_error(code: int, message: str) -> grpc.aio.AioRpcError:
    """A per-group coordinator error, as the failed call GroupCoordinator.call retries."""
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(("raftka-error", ErrorCode.Name(code))),  # type: ignore[arg-type]
        details=message,
    )
