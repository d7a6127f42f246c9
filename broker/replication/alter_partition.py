"""What a leader asks of the controller about one partition it leads (AlterPartition): an ISR
change (expansions on a follower's fetch, shrinks by the periodic check), or resigning its
leadership to another in-sync replica because its own copy is damaged."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from raftka.broker.partition import Partition
from raftka.broker.replication.leader_state import IsrProposal
from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import controller_pb2 as cpb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)


class AlterPartitionSender:
    """Sends one leader's AlterPartition requests and applies the answers."""

    def __init__(
        self,
        broker_id: int,
        *,
        controller: ControllerClient,
        broker_epoch: Callable[[], int],
        broker_epoch_of: Callable[[int], int],
        is_active: Callable[[int], bool],
    ) -> None:
        """``broker_epoch``: this broker's; ``broker_epoch_of(b)``: broker ``b``'s as the
        metadata image holds it; ``is_active(b)``: whether ``b`` is registered and unfenced."""
        self._broker_id = broker_id
        self._controller = controller
        self._broker_epoch = broker_epoch
        self._epoch_of = broker_epoch_of
        self._is_active = is_active

    def _request(
        self,
        hosted: Partition,
        leader_epoch: int,
        partition_epoch: int,
        isr_with_epochs: dict[int, int],
        *,
        leader_resigns: bool = False,
    ) -> cpb.AlterPartitionRequest:
        """An AlterPartition for one partition this broker leads: the new ISR, each member
        with the broker epoch it is counted under (KIP-903)."""
        return cpb.AlterPartitionRequest(
            broker_id=self._broker_id,
            broker_epoch=self._broker_epoch(),
            topics=[
                cpb.AlterPartitionTopic(
                    topic_id=hosted.topic_id,
                    partitions=[
                        cpb.AlterPartitionData(
                            partition_index=hosted.partition,
                            leader_epoch=leader_epoch,
                            partition_epoch=partition_epoch,
                            new_isr_with_epochs=[
                                cpb.BrokerEpochPair(broker_id=b, broker_epoch=e)
                                for b, e in isr_with_epochs.items()
                            ],
                            leader_resigns=leader_resigns,
                        )
                    ],
                )
            ],
        )

    async def alter_isr(self, hosted: Partition, proposal: IsrProposal) -> None:
        """Proposes the leader's ISR change; a committed one is applied to the leader state
        (the high watermark may move, and waiting acks=all writes re-check
        min.insync.replicas), a refused or failed one releases the proposal."""
        state = hosted.leader_state
        if state is None:
            return
        hosted.alter_in_flight = True
        # KIP-903: each member with the broker epoch its fetches came with, so that a new
        # incarnation is not counted on its predecessor's progress.
        fetched_with = dict(proposal.broker_epochs)
        request = self._request(
            hosted,
            proposal.leader_epoch,
            proposal.partition_epoch,
            {b: fetched_with.get(b, self._epoch_of(b)) for b in proposal.new_isr},
        )
        try:
            response: cpb.AlterPartitionResponse = await self._controller.call(
                lambda s, t: s.AlterPartition(request, timeout=t)
            )
            result = response.topics[0].partitions[0]
            if result.error_code == ErrorCode.NONE and hosted.leader_state is state:
                log.info(
                    "isr_changed",
                    topic=hosted.topic,
                    partition=hosted.partition,
                    isr=list(result.isr),
                    partition_epoch=result.partition_epoch,
                )
                if state.on_isr_committed(tuple(result.isr), result.partition_epoch):
                    hosted.publish_high_watermark()
                hosted.notify_hw()  # waiting acks=all writes re-check min.insync.replicas
            else:
                log.info(
                    "isr_change_refused",
                    topic=hosted.topic,
                    partition=hosted.partition,
                    error=ErrorCode.Name(result.error_code),
                    message=result.error_message,
                )
                state.on_isr_rejected()
        except (RaftkaError, IndexError) as e:
            log.warning(
                "isr_change_failed", topic=hosted.topic, partition=hosted.partition, error=str(e)
            )
            state.on_isr_rejected()
        finally:
            hosted.alter_in_flight = False

    async def resign(self, hosted: Partition) -> None:
        """Gives up leading ``hosted`` (its log is damaged) to the other active in-sync
        replicas; with none, logs that the damage cannot be repaired and keeps leading."""
        state, damage = hosted.leader_state, hosted.log.damage
        if state is None or damage is None:
            return
        others = [b for b in state.isr if b != self._broker_id and self._is_active(b)]
        if not others:
            log.error(
                "log_damage_not_repairable",
                topic=hosted.topic,
                partition=hosted.partition,
                offset=damage.offset,
                isr=list(state.isr),
                reason=(
                    "no other in-sync replica holds the data: offsets below the damage are "
                    "served, the rest are refused until one does"
                ),
            )
            return
        request = self._request(
            hosted,
            state.leader_epoch,
            state.partition_epoch,
            {b: self._epoch_of(b) for b in others},
            leader_resigns=True,
        )
        response: cpb.AlterPartitionResponse = await self._controller.call(
            lambda s, t: s.AlterPartition(request, timeout=t)
        )
        result = response.topics[0].partitions[0]
        log.warning(
            "leader_resigned_for_damage"
            if result.error_code == ErrorCode.NONE
            else "leader_resignation_refused",
            topic=hosted.topic,
            partition=hosted.partition,
            offset=damage.offset,
            new_leader=result.leader_id,
            isr=list(result.isr),
            error=ErrorCode.Name(result.error_code),
            message=result.error_message,
        )
