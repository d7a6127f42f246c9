"""A coordinator's access to the partitions of its internal topic hosted on this broker.

A thin adapter over the :class:`~raftka.broker.replica_manager.ReplicaManager`: which partitions
of the topic this broker leads now (and in which leader epoch), the records of one of them from
its log start (for loading a shard), and the replicated append of a shard's records as one
batch with acks=all. The runtime (:mod:`raftka.broker.coordinator.runtime`) sees only the
:class:`InternalLog` protocol, so its tests can use a log in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Sequence
from typing import Protocol

import structlog

from raftka.broker.coordinator.api import LogEntry, StoredMarker, StoredRecord
from raftka.broker.partition import NotLeaderOrFollowerError, Partition
from raftka.broker.producers.state import next_sequence
from raftka.broker.replica_manager import ReplicaManager
from raftka.common.clock import wall_clock_ms
from raftka.common.errors import NotEnoughReplicasAfterAppendError, RequestTimedOutError
from raftka.common.records.batch import split_batches
from raftka.common.records.builder import build_batch
from raftka.common.records.control import is_end_txn_marker, parse_end_txn_marker
from raftka.common.records.decoder import decode_batch

log = structlog.get_logger(__name__)

LOAD_READ_BYTES = 1 << 20
"""How much of the log one read during loading takes."""
APPEND_TIMEOUT_S = 10.0
"""How long a coordinator write waits for the ISR before it logs that it is still waiting (it
goes on waiting: see :meth:`ReplicatedInternalLog.append`)."""
COMMIT_POLL_S = 0.5
"""How often a write still waiting for the high watermark re-checks its leadership."""


class InternalLog(Protocol):
    """What the runtime needs of the partitions of its internal topic."""

    def led_partitions(self) -> dict[int, int]:
        """partition -> leader epoch, for every partition this broker leads now."""
        ...

    async def read_all(self, partition: int, leader_epoch: int) -> list[LogEntry]:
        """Every keyed record of the partition and every transaction marker, in log order,
        once everything in the leader's log is committed (raises NotLeaderOrFollowerError if
        leadership moves meanwhile)."""
        ...

    async def append(
        self,
        partition: int,
        leader_epoch: int,
        records: Sequence[StoredRecord],
        *,
        producer: tuple[int, int] | None = None,
    ) -> None:
        """Appends ``records`` as one batch with acks=all; returns once they are committed.
        ``producer`` (id, epoch): a transactional batch of that producer. Raises only when the
        outcome is known to be "not written" (nothing reached the log; for a transactional
        batch also the partition's refusal, such as InvalidProducerEpochError), or when
        leadership moved (the shard is unloaded: its state is the new leader's)."""
        ...

    async def write_marker(
        self,
        partition: int,
        leader_epoch: int,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
    ) -> None:
        """Appends a COMMIT / ABORT marker with acks=all and returns once it is committed;
        raises as :meth:`append` (InvalidProducerEpochError or
        TransactionCoordinatorFencedError: refused, nothing written)."""
        ...


class ReplicatedInternalLog:
    """:class:`InternalLog` over the broker's hosted partitions of ``topic``."""

    def __init__(
        self, replicas: ReplicaManager, topic: str, *, append_timeout_s: float = APPEND_TIMEOUT_S
    ) -> None:
        self._replicas = replicas
        self.topic = topic
        self._append_timeout_s = append_timeout_s

    def led_partitions(self) -> dict[int, int]:
        return {
            p.partition: p.leader_epoch
            for p in self._replicas.hosted()
            if p.topic == self.topic and p.is_leader and p.leader_state is not None
        }

    def _leader(self, partition: int, leader_epoch: int) -> Partition:
        hosted = self._replicas.leader_partition(self.topic, partition)
        if hosted.leader_epoch != leader_epoch:
            raise NotLeaderOrFollowerError(
                f"{hosted} moved to leader epoch {hosted.leader_epoch} (the coordinator loaded "
                f"epoch {leader_epoch})",
                leader_id=self._replicas.broker_id,
                leader_epoch=hosted.leader_epoch,
            )
        return hosted

    async def read_all(self, partition: int, leader_epoch: int) -> list[LogEntry]:
        hosted = self._leader(partition, leader_epoch)
        # A new leader's log may end past its high watermark (records of the previous epoch
        # the followers have yet to confirm): they are part of the state, so wait until they
        # are committed, then read everything.
        end = hosted.log.log_end_offset
        while hosted.high_watermark < end:
            waiter = hosted.hw_advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), 0.5)
            hosted = self._leader(partition, leader_epoch)
        records: list[LogEntry] = []
        position = hosted.log.log_start_offset
        while position < end:
            data = await hosted.read(position, LOAD_READ_BYTES, min_one_batch=True)
            start = position
            for span in split_batches(data.records):
                header = span.header
                if header.next_offset <= position:
                    continue
                position = header.next_offset
                if is_end_txn_marker(header):
                    marker = parse_end_txn_marker(data.records, span.position)
                    records.append(
                        StoredMarker(header.producer_id, header.producer_epoch, marker.committed)
                    )
                    continue
                if header.is_control:
                    continue
                producer = (
                    (header.producer_id, header.producer_epoch)
                    if header.is_transactional
                    else (-1, -1)
                )
                for record in decode_batch(data.records, span.position, verify=False).records:
                    if record.key is not None:
                        records.append(StoredRecord(record.key, record.value, *producer))
            if position == start:  # nothing more below the high watermark
                break
        return records

    async def append(
        self,
        partition: int,
        leader_epoch: int,
        records: Sequence[StoredRecord],
        *,
        producer: tuple[int, int] | None = None,
    ) -> None:
        """Once the batch is in the leader's log, its outcome is the log's: it is committed
        when the high watermark passes it (even if the ISR shrank below min.insync.replicas on
        the way, which the partition reports as NOT_ENOUGH_REPLICAS_AFTER_APPEND) or dropped
        with a new leader's truncation. A retriable error would have the caller retry a change
        that is probably kept: the shard reloaded from the log then holds what the caller was
        never told (a join retried without its member id leaves the first member as a ghost
        holding partitions until its session times out). So this waits for the commit, as
        long as this broker leads the partition in ``leader_epoch``."""
        hosted = self._leader(partition, leader_epoch)
        now = wall_clock_ms()
        rows = [(now, r.key, r.value, ()) for r in records]
        if producer is None:
            batch = build_batch(rows)
        else:
            batch = build_batch(
                rows,
                producer_id=producer[0],
                producer_epoch=producer[1],
                base_sequence=_next_base_sequence(hosted, *producer),
                transactional=True,
            )
        await self._await_commit(
            partition,
            leader_epoch,
            hosted.append(batch, acks=-1, timeout_s=self._append_timeout_s),
        )

    async def write_marker(
        self,
        partition: int,
        leader_epoch: int,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
    ) -> None:
        """As :meth:`append`: a marker in the log is waited for until it is committed."""
        hosted = self._leader(partition, leader_epoch)
        await self._await_commit(
            partition,
            leader_epoch,
            hosted.write_txn_marker(
                producer_id,
                producer_epoch,
                committed,
                coordinator_epoch,
                timeout_s=self._append_timeout_s,
            ),
        )

    async def _await_commit(
        self, partition: int, leader_epoch: int, write: Awaitable[object]
    ) -> None:
        """Runs a leader write with acks=all; when it is in the log but not yet committed in
        time, waits for the commit (see :meth:`append`)."""
        try:
            await write
        except (NotEnoughReplicasAfterAppendError, RequestTimedOutError) as e:
            # In the log (only this partition's shard appends, under its lock: the log end
            # is at or past the batch's end).
            hosted = self._leader(partition, leader_epoch)
            end = hosted.log.log_end_offset
            log.warning(
                "coordinator_write_awaiting_commit",
                topic=self.topic,
                partition=partition,
                leader_epoch=leader_epoch,
                offset=end - 1,
                reason=e.message,
            )
            await self._committed(partition, leader_epoch, end)

    async def _committed(self, partition: int, leader_epoch: int, end: int) -> None:
        """Until the high watermark reaches ``end`` (raises NotLeaderOrFollowerError when
        leadership moves first)."""
        while True:
            hosted = self._leader(partition, leader_epoch)
            if hosted.high_watermark >= end:
                return
            waiter = hosted.hw_advanced
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), COMMIT_POLL_S)


def _next_base_sequence(hosted: Partition, producer_id: int, producer_epoch: int) -> int:
    """The base sequence the partition expects of ``producer_id``'s next batch in
    ``producer_epoch``: after its last one in that epoch, 0 in a new epoch. Only the shard's
    writer appends to the partition (under its lock), so the answer holds until the append."""
    entry = hosted.log.producer_state.entry(producer_id)
    last = None if entry is None or entry.epoch != producer_epoch else entry.last_seq
    return 0 if last is None else next_sequence(last)
