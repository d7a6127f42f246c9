"""A small group shard, offsets log and metadata for testing the coordinator's runtime.

FakeShard keeps committed offsets as records ``o/<group>/<topic>/<partition>`` -> offset (a
transactional one pending per producer until its marker), and
members as ``m/<group>/<member>`` -> "": a join assigns ``m<N>`` and pushes an answer to every
other member of the group (as a revocation would be).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

from raftka.broker.coordinator.api import LogEntry
from raftka.broker.groups.api import MemberPush, Outcome, StoredMarker, StoredRecord, TopicsView
from raftka.broker.groups.classic import (
    ClassicJoin,
    ClassicLeaver,
    ClassicSync,
    JoinAnswer,
    LeaveAnswer,
    SyncAnswer,
)
from raftka.common.errors import RaftkaError
from raftka.common.group_errors import UnknownMemberIdError
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode


class FakeShard:
    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.offsets: dict[tuple[str, str, int], int] = {}
        self.members: dict[str, list[str]] = {}
        self.replayed = 0
        self.untold: list[tuple[str, str]] = []
        self.loaded_at: int | None = None
        self.ticks = 0
        self.tick_records: list[StoredRecord] = []
        self.deadline: int | None = None
        self.heartbeats: list[tuple[str, str]] = []  # (client_id, client_host)
        self.pending: dict[int, list[StoredRecord]] = {}  # producer id -> its offset records

    def replay(self, record: StoredRecord) -> None:
        self.replayed += 1
        self._apply(record)

    def replay_marker(self, producer_id: int, committed: bool) -> None:
        self.replayed += 1
        self._settle(producer_id, committed)

    def _settle(self, producer_id: int, committed: bool) -> None:
        for record in self.pending.pop(producer_id, []):
            if committed:
                self._apply(dataclasses.replace(record, producer_id=-1))

    def _apply(self, record: StoredRecord) -> None:
        if record.producer_id >= 0:
            self.pending.setdefault(record.producer_id, []).append(record)
            return
        kind, group, *rest = record.key.decode().split("/")
        if kind == "o":
            key = (group, rest[0], int(rest[1]))
            if record.value is None:
                self.offsets.pop(key, None)
            else:
                self.offsets[key] = int(record.value)
        elif kind == "m":
            members = self.members.setdefault(group, [])
            if record.value is None:
                if rest[0] in members:
                    members.remove(rest[0])
            elif rest[0] not in members:
                members.append(rest[0])

    def _write(self, records: list[StoredRecord]) -> list[StoredRecord]:
        for r in records:
            self._apply(r)
        return records

    def loaded(self, now_ms: int) -> None:
        self.loaded_at = now_ms

    def heartbeat(
        self,
        request: gpb.ConsumerGroupHeartbeatRequest,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[gpb.ConsumerGroupHeartbeatResponse]:
        self.heartbeats.append((client_id, client_host))
        group = request.group_id
        members = self.members.get(group, [])
        if request.member_epoch != 0:
            if request.member_id not in members:
                raise UnknownMemberIdError(f"{request.member_id} is not a member of {group}")
            return Outcome(
                gpb.ConsumerGroupHeartbeatResponse(
                    member_id=request.member_id, member_epoch=request.member_epoch
                )
            )
        member = f"m{sum(len(m) for m in self.members.values()) + 1}"
        others = list(members)
        records = self._write([StoredRecord(f"m/{group}/{member}".encode(), b"")])
        pushes = [
            MemberPush(
                group,
                other,
                gpb.ConsumerGroupHeartbeatResponse(
                    member_id=other, member_epoch=2, has_assignment=True
                ),
            )
            for other in others
        ]
        return Outcome(
            gpb.ConsumerGroupHeartbeatResponse(member_id=member, member_epoch=1),
            records,
            pushes,
        )

    def not_told(self, group_id: str, member_id: str) -> None:
        self.untold.append((group_id, member_id))

    def commit_offsets(
        self, request: gpb.OffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]:
        response = gpb.OffsetCommitResponse()
        records = []
        for t in request.topics:
            result = response.topics.add(name=t.name)
            for p in t.partitions:
                key = f"o/{request.group_id}/{t.name}/{p.partition}".encode()
                records.append(StoredRecord(key, str(p.offset).encode()))
                result.partitions.add(partition=p.partition)
        return Outcome(response, self._write(records))

    def txn_commit_offsets(
        self, request: gpb.TxnOffsetCommitRequest, *, now_ms: int, topics: TopicsView
    ) -> Outcome[gpb.OffsetCommitResponse]:
        response = gpb.OffsetCommitResponse()
        records = []
        for t in request.topics:
            result = response.topics.add(name=t.name)
            for p in t.partitions:
                key = f"o/{request.group_id}/{t.name}/{p.partition}".encode()
                records.append(
                    StoredRecord(
                        key, str(p.offset).encode(), request.producer_id, request.producer_epoch
                    )
                )
                result.partitions.add(partition=p.partition)
        producer = (request.producer_id, request.producer_epoch)
        return Outcome(response, self._write(records), transactional_producer=producer)

    def complete_transaction(
        self, producer_id: int, committed: bool, *, now_ms: int
    ) -> Outcome[None]:
        self._settle(producer_id, committed)
        return Outcome(None)

    def fetch_offsets(self, request: gpb.OffsetFetchRequest) -> gpb.OffsetFetchResponse:
        response = gpb.OffsetFetchResponse()
        for (group, topic, partition), offset in sorted(self.offsets.items()):
            if group == request.group_id:
                response.topics.add(name=topic).partitions.add(partition=partition, offset=offset)
        return response

    def list_groups(self, request: gpb.ListGroupsRequest) -> list[gpb.ListedGroup]:
        return [gpb.ListedGroup(group_id=g, state="stable") for g in self.group_ids()]

    def describe_group(self, group_id: str) -> gpb.DescribedGroup:
        if group_id not in self.group_ids():
            return gpb.DescribedGroup(group_id=group_id, error_code=ErrorCode.GROUP_ID_NOT_FOUND)
        return gpb.DescribedGroup(group_id=group_id, state="stable")

    def delete_groups(self, group_ids: Sequence[str]) -> Outcome[list[gpb.GroupResult]]:
        records = [
            StoredRecord(f"o/{g}/{t}/{p}".encode(), None)
            for (g, t, p) in self.offsets
            if g in group_ids
        ]
        return Outcome([gpb.GroupResult(group_id=g) for g in group_ids], self._write(records))

    def delete_offsets(self, request: gpb.OffsetDeleteRequest) -> Outcome[gpb.OffsetDeleteResponse]:
        return Outcome(gpb.OffsetDeleteResponse())

    def tick(self, *, now_ms: int, topics: TopicsView) -> Outcome[None]:
        self.ticks += 1
        records, self.tick_records = self._write(self.tick_records), []
        return Outcome(None, records)

    def next_deadline_ms(self) -> int | None:
        return self.deadline

    def group_ids(self) -> list[str]:
        return sorted({g for g, _, _ in self.offsets} | set(self.members))

    # The classic protocol is tested on the real shard (test_classic.py), not through this fake.

    def classic_join(
        self,
        request: ClassicJoin,
        *,
        now_ms: int,
        topics: TopicsView,
        client_id: str,
        client_host: str,
    ) -> Outcome[JoinAnswer]:
        raise NotImplementedError("FakeShard does not serve the classic protocol")

    def classic_sync(self, request: ClassicSync, *, now_ms: int) -> Outcome[SyncAnswer]:
        raise NotImplementedError("FakeShard does not serve the classic protocol")

    def classic_heartbeat(
        self, group_id: str, member_id: str, generation: int, *, now_ms: int
    ) -> Outcome[tuple[int, str | None]]:
        raise NotImplementedError("FakeShard does not serve the classic protocol")

    def classic_leave(
        self, group_id: str, leavers: Sequence[ClassicLeaver], *, now_ms: int, topics: TopicsView
    ) -> Outcome[list[LeaveAnswer]]:
        raise NotImplementedError("FakeShard does not serve the classic protocol")


class FakeLog:
    """Partitions in memory. ``gate`` holds every read_all until set; ``fail_next`` makes the
    next append (or marker) raise it (nothing written)."""

    def __init__(self) -> None:
        self.led: dict[int, int] = {}
        self.records: dict[int, list[LogEntry]] = {}
        self.appends: list[tuple[int, int, int]] = []  # (partition, epoch, records)
        self.producers: list[tuple[int, int] | None] = []  # the producer of each append
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail_next: RaftkaError | None = None

    def led_partitions(self) -> dict[int, int]:
        return dict(self.led)

    async def read_all(self, partition: int, leader_epoch: int) -> list[LogEntry]:
        await self.gate.wait()
        return list(self.records.get(partition, []))

    def _check(self) -> None:
        if self.fail_next is not None:
            error, self.fail_next = self.fail_next, None
            raise error

    async def append(
        self,
        partition: int,
        leader_epoch: int,
        records: Sequence[StoredRecord],
        *,
        producer: tuple[int, int] | None = None,
    ) -> None:
        await asyncio.sleep(0)
        self._check()
        assert all(r.producer_id == (-1 if producer is None else producer[0]) for r in records)
        self.appends.append((partition, leader_epoch, len(records)))
        self.producers.append(producer)
        self.records.setdefault(partition, []).extend(records)

    async def write_marker(
        self,
        partition: int,
        leader_epoch: int,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
    ) -> None:
        await asyncio.sleep(0)
        self._check()
        marker = StoredMarker(producer_id, producer_epoch, committed)
        self.records.setdefault(partition, []).append(marker)


class FakeMetadata:
    def __init__(self, partitions: int | None = 4) -> None:
        self.partitions = partitions
        self.leaders: dict[int, int] = {}
        self.topic_counts: dict[str, int] = {"events": 3}

    def offsets_partitions(self) -> int | None:
        return self.partitions

    def leader_of(self, partition: int) -> int:
        return self.leaders.get(partition, -1)

    def topics(self) -> TopicsView:
        return self.topic_counts
