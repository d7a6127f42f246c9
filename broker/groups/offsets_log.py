"""The coordinator's access to the ``__consumer_offsets`` partitions this broker hosts.

A thin adapter over the :class:`~raftka.broker.replica_manager.ReplicaManager`: which partitions
this broker leads now (and in which leader epoch), the records of one of them from its log start
(for loading a shard), and the replicated append of a shard's records as one batch with
acks=all. The runtime (:mod:`raftka.broker.groups.runtime`) sees only the
:class:`OffsetsLog` protocol, so its tests can use a log in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

from raftka.broker.groups.api import StoredRecord
from raftka.broker.groups.placement import OFFSETS_TOPIC
from raftka.broker.partition import NotLeaderOrFollowerError, Partition
from raftka.broker.replica_manager import ReplicaManager
from raftka.common.clock import wall_clock_ms
from raftka.common.records.batch import split_batches
from raftka.common.records.builder import build_batch
from raftka.common.records.decoder import decode_batch

LOAD_READ_BYTES = 1 << 20
"""How much of the log one read during loading takes."""
APPEND_TIMEOUT_S = 10.0
"""How long a coordinator write waits to be replicated to the ISR."""


class OffsetsLog(Protocol):
    """What the runtime needs of the ``__consumer_offsets`` partitions."""

    def led_partitions(self) -> dict[int, int]:
        """partition -> leader epoch, for every partition this broker leads now."""
        ...

    async def read_all(self, partition: int, leader_epoch: int) -> list[StoredRecord]:
        """Every keyed record of the partition, in log order, once everything in the leader's
        log is committed (raises NotLeaderOrFollowerError if leadership moves meanwhile)."""
        ...

    async def append(
        self, partition: int, leader_epoch: int, records: Sequence[StoredRecord]
    ) -> None:
        """Appends ``records`` as one batch with acks=all; returns once they are committed."""
        ...


class ReplicatedOffsetsLog:
    """:class:`OffsetsLog` over the broker's hosted partitions."""

    def __init__(self, replicas: ReplicaManager) -> None:
        self._replicas = replicas

    def led_partitions(self) -> dict[int, int]:
        return {
            p.partition: p.leader_epoch
            for p in self._replicas.hosted()
            if p.topic == OFFSETS_TOPIC and p.is_leader and p.leader_state is not None
        }

    def _leader(self, partition: int, leader_epoch: int) -> Partition:
        hosted = self._replicas.leader_partition(OFFSETS_TOPIC, partition)
        if hosted.leader_epoch != leader_epoch:
            raise NotLeaderOrFollowerError(
                f"{hosted} moved to leader epoch {hosted.leader_epoch} (the coordinator loaded "
                f"epoch {leader_epoch})",
                leader_id=self._replicas.broker_id,
                leader_epoch=hosted.leader_epoch,
            )
        return hosted

    async def read_all(self, partition: int, leader_epoch: int) -> list[StoredRecord]:
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
        records: list[StoredRecord] = []
        position = hosted.log.log_start_offset
        while position < end:
            data = await hosted.read(position, LOAD_READ_BYTES, min_one_batch=True)
            start = position
            for span in split_batches(data.records):
                if span.header.next_offset <= position:
                    continue
                position = span.header.next_offset
                if span.header.is_control:
                    continue
                for record in decode_batch(data.records, span.position, verify=False).records:
                    if record.key is not None:
                        records.append(StoredRecord(record.key, record.value))
            if position == start:  # nothing more below the high watermark
                break
        return records

    async def append(
        self, partition: int, leader_epoch: int, records: Sequence[StoredRecord]
    ) -> None:
        hosted = self._leader(partition, leader_epoch)
        now = wall_clock_ms()
        batch = build_batch([(now, r.key, r.value, ()) for r in records])
        await hosted.append(batch, acks=-1, timeout_s=APPEND_TIMEOUT_S)
