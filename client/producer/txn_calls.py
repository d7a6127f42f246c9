"""The RPCs of a transactional producer, each sent to the right coordinator and retried until
max_block_ms: the transactional id's coordinator (InitProducerId, AddPartitionsToTxn,
AddOffsetsToTxn, EndTxn) and a group's coordinator (TxnOffsetCommit).

Retried, through :class:`GroupCoordinator`: a coordinator that moved or is not available
(found again), one still loading, CONCURRENT_TRANSACTIONS (the previous transaction is still
completing), also when an answer carries them per item. Everything else is raised as the
error class the server would raise; what it means for the producer is the transaction
manager's to decide (errors.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

from raftka.client.connections import BrokerConnections
from raftka.client.group_coordinator import GroupCoordinator, commit_request
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.errors import item_error
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import txn_errors
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.v1 import broker_pb2 as pb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

T = TypeVar("T")

RETRY_HERE = (txn_errors.ConcurrentTransactionsError,)
CONCURRENT_RETRY_S = 0.02
"""CONCURRENT_TRANSACTIONS clears as soon as the previous transaction's markers are written
(milliseconds): retry after this short fixed wait, as Kafka's producer does for
AddPartitionsToTxn, rather than after the growing retry backoff."""


class GroupMetadata(Protocol):
    """A consumer's group identity (raftka.client.consumer's ConsumerGroupMetadata)."""

    @property
    def group_id(self) -> str: ...

    @property
    def member_id(self) -> str: ...

    @property
    def member_epoch(self) -> int: ...


class TxnCalls:
    def __init__(
        self,
        config: ProducerConfig,
        connections: BrokerConnections,
        brokers: Callable[[], list[str]],
    ) -> None:
        assert config.transactional_id is not None
        self.transactional_id = config.transactional_id
        self._config = config
        self._connections = connections
        self._brokers = brokers
        self._retry = RetryPolicy(
            config.retry_backoff_ms / 1000, max(config.retry_backoff_max_ms / 1000, 0.001)
        )
        self._timeout_s = config.request_timeout_ms / 1000
        self.coordinator = GroupCoordinator(
            config.transactional_id,
            connections,
            brokers,
            request_timeout_s=self._timeout_s,
            retry=self._retry,
            key_type=gpb.COORDINATOR_TYPE_TRANSACTION,
        )
        self._groups: dict[str, GroupCoordinator] = {}

    async def init_producer_id(self) -> tuple[int, int]:
        request = pb.InitProducerIdRequest(
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self._config.transaction_timeout_ms,
        )

        async def call(address: str) -> pb.InitProducerIdResponse:
            response: pb.InitProducerIdResponse = await self._connections.stub(
                address
            ).InitProducerId(request, timeout=self._timeout_s)
            return response

        response = await self._at_coordinator(call)
        return int(response.producer_id), int(response.producer_epoch)

    async def add_partitions(
        self, producer_id: int, epoch: int, partitions: list[TopicPartition]
    ) -> None:
        """All or none are added; a refusal in the answer is raised (retried if retriable)."""
        topics: dict[str, list[int]] = {}
        for tp in partitions:
            topics.setdefault(tp.topic, []).append(tp.partition)
        request = tpb.AddPartitionsToTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=producer_id,
            producer_epoch=epoch,
            topics=[tpb.TxnTopicPartitions(topic=t, partitions=ps) for t, ps in topics.items()],
        )

        async def call(address: str) -> None:
            stub = self._connections.txn_stub(address)
            response: tpb.AddPartitionsToTxnResponse = await stub.AddPartitionsToTxn(
                request, timeout=self._timeout_s
            )
            for r in response.results:
                if r.error_code != ErrorCode.NONE:
                    raise item_error(r.error_code, r.error_message, f"{r.topic}-{r.partition}")

        await self._at_coordinator(call)

    async def add_offsets(self, producer_id: int, epoch: int, group_id: str) -> None:
        request = tpb.AddOffsetsToTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=producer_id,
            producer_epoch=epoch,
            group_id=group_id,
        )

        async def call(address: str) -> None:
            stub = self._connections.txn_stub(address)
            await stub.AddOffsetsToTxn(request, timeout=self._timeout_s)

        await self._at_coordinator(call)

    async def txn_offset_commit(
        self,
        producer_id: int,
        epoch: int,
        group: GroupMetadata,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
    ) -> None:
        """At the group's coordinator; the first refused partition's error is raised."""
        plain = commit_request(group.group_id, group.member_id, group.member_epoch, offsets)
        request = gpb.TxnOffsetCommitRequest(
            transactional_id=self.transactional_id,
            group_id=group.group_id,
            producer_id=producer_id,
            producer_epoch=epoch,
            member_id=group.member_id,
            member_epoch=group.member_epoch if group.member_id else -1,
            topics=plain.topics,
        )
        coordinator = self._group(group.group_id)

        async def call(address: str) -> None:
            stub = coordinator.stub(address)
            response: gpb.OffsetCommitResponse = await stub.TxnOffsetCommit(
                request, timeout=self._timeout_s
            )
            for t in response.topics:
                for p in t.partitions:
                    if p.error_code != ErrorCode.NONE:
                        raise item_error(p.error_code, p.error_message, f"{t.name}-{p.partition}")

        await coordinator.call_at(
            call, self._deadline(), retry_here=RETRY_HERE, here_backoff_s=CONCURRENT_RETRY_S
        )

    async def end_txn(self, producer_id: int, epoch: int, committed: bool) -> tuple[int, int]:
        """The (producer id, epoch) to use from now on."""
        request = tpb.EndTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=producer_id,
            producer_epoch=epoch,
            committed=committed,
        )

        async def call(address: str) -> tpb.EndTxnResponse:
            stub = self._connections.txn_stub(address)
            response: tpb.EndTxnResponse = await stub.EndTxn(request, timeout=self._timeout_s)
            return response

        response = await self._at_coordinator(call)
        return int(response.producer_id), int(response.producer_epoch)

    async def _at_coordinator(self, call: Callable[[str], Awaitable[T]]) -> T:
        return await self.coordinator.call_at(
            call, self._deadline(), retry_here=RETRY_HERE, here_backoff_s=CONCURRENT_RETRY_S
        )

    def _deadline(self) -> Deadline:
        return Deadline(self._config.max_block_ms / 1000)

    def _group(self, group_id: str) -> GroupCoordinator:
        found = self._groups.get(group_id)
        if found is None:
            found = self._groups[group_id] = GroupCoordinator(
                group_id,
                self._connections,
                self._brokers,
                request_timeout_s=self._timeout_s,
                retry=self._retry,
            )
        return found
