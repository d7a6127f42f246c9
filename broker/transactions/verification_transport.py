"""How a partition leader reaches a transactional id's coordinator to verify a write
(:class:`~raftka.broker.transactions.verification.PartitionMembership`): the coordinator is the
leader of the id's ``__transaction_state`` partition in this broker's metadata image; it is
asked AddPartitionsToTxn(verify_only) over gRPC, or directly when it is this broker (as the
marker transport short-circuits its own markers)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import grpc

from raftka.broker.groups.placement import partition_for
from raftka.broker.transactions.api import TRANSACTION_STATE_TOPIC, TopicPartition
from raftka.broker.transactions.marker_transport import BrokerChannels
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.rpc.status import error_from_rpc
from raftka.common.txn_errors import TransactionAbortableError
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

VERIFY_TIMEOUT_S = 10.0
"""The deadline of one verification call (a read on the coordinator: it waits only for a
write in progress on the id's shard)."""


class TxnTopicLocation(Protocol):
    """Where ``__transaction_state``'s partitions are led (coordinator/internal_topic.
    InternalTopic)."""

    def partition_count(self) -> int | None: ...

    def leader_of(self, partition: int) -> int: ...


class LocalVerification(Protocol):
    """This broker's coordinator (runtime.TransactionCoordinator.verify_partitions)."""

    async def verify_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
    ) -> list[TopicPartition]: ...


class CoordinatorVerification:
    """Verifies one partition of a producer's transaction with the id's coordinator."""

    def __init__(
        self,
        topic: TxnTopicLocation,
        channels: BrokerChannels,
        *,
        broker_id: int,
        local: LocalVerification | None,
        timeout_s: float = VERIFY_TIMEOUT_S,
    ) -> None:
        self._topic = topic
        self._channels = channels
        self._broker_id = broker_id
        self._local = local
        self._timeout_s = timeout_s

    def coordinator_of(self, transactional_id: str) -> int:
        """The broker leading the id's ``__transaction_state`` partition;
        CoordinatorNotAvailableError when there is none."""
        count = self._topic.partition_count()
        leader = (
            -1 if count is None else self._topic.leader_of(partition_for(transactional_id, count))
        )
        if leader < 0:
            raise CoordinatorNotAvailableError(
                f"transactional id {transactional_id!r} has no coordinator in this broker's "
                f"metadata ({TRANSACTION_STATE_TOPIC} "
                f"{'is missing' if count is None else 'has no leader for its partition'})"
            )
        return leader

    async def verify(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partition: TopicPartition,
    ) -> None:
        coordinator = self.coordinator_of(transactional_id)
        if coordinator == self._broker_id and self._local is not None:
            missing = await self._local.verify_partitions(
                transactional_id, producer_id, producer_epoch, [partition]
            )
            if missing:
                raise TransactionAbortableError(
                    f"{partition[0]}-{partition[1]} is not in the ongoing transaction of "
                    f"{transactional_id!r}"
                )
            return
        request = tpb.AddPartitionsToTxnRequest(
            transactional_id=transactional_id,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            topics=[tpb.TxnTopicPartitions(topic=partition[0], partitions=[partition[1]])],
            verify_only=True,
        )
        try:
            response: tpb.AddPartitionsToTxnResponse = await self._channels.transactions(
                coordinator
            ).AddPartitionsToTxn(request, timeout=self._timeout_s)
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, f"transaction coordinator {coordinator}") from None
        if not response.results:
            raise CoordinatorNotAvailableError(
                f"coordinator {coordinator} answered the verification without a result"
            )
        for result in response.results:
            if result.error_code == ErrorCode.TRANSACTION_ABORTABLE:
                raise TransactionAbortableError(result.error_message)
            if result.error_code != ErrorCode.NONE:
                raise CoordinatorNotAvailableError(
                    f"coordinator {coordinator} answered "
                    f"{ErrorCode.Name(result.error_code)} for the verification: "
                    f"{result.error_message}"
                )
