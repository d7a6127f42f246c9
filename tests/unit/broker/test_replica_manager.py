"""ReplicaManager, driven in-process: a restarted broker takes no role from the metadata it
replays until its new incarnation's registration is in its image (KIP-966)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.broker.io_threads import IoThreads
from raftka.broker.log.manager import LogManager
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.partition import NotLeaderOrFollowerError
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.replication.silence import FOLLOWER_SILENCE_MS
from raftka.common.clock import monotonic_ms
from raftka.common.ids import BrokerEpoch, BrokerId
from raftka.common.metadata.model import BrokerEndpoint, BrokerRegistration, PartitionState
from raftka.common.metadata.records import (
    partition_change_record,
    partition_record,
    register_broker_record,
    topic_record,
)
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import controller_pb2 as pb
from raftka.v1.metadata_pb2 import MetadataRecord
from tests.unit.broker.support import TOPIC_ID

ME = BrokerId(1)
TOPIC = "orders"


def registration(broker_id: int, epoch: int, incarnation: str) -> MetadataRecord:
    return register_broker_record(
        BrokerRegistration(
            broker_id=BrokerId(broker_id),
            epoch=BrokerEpoch(epoch),
            incarnation_id=incarnation,
            endpoints=(BrokerEndpoint("CLIENT", "127.0.0.1", 1),),
            fenced=False,
        )
    )


def deliver(follower: MetadataFollower, index: int, *records: MetadataRecord) -> None:
    follower._handle(pb.MetadataEvent(delta=pb.MetadataDelta(index=index, records=records)))


class Broker:
    """A ReplicaManager over real logs in a temporary directory, its metadata fed by hand."""

    def __init__(self, tmp_path: Path) -> None:
        self.io = IoThreads()
        self.logs = LogManager.open([tmp_path / "logs"], hw_follows_log_end=False)
        self.follower = MetadataFollower(ControllerClient(["127.0.0.1:1"]))
        self.broker_epoch = -1
        self.reports: list[tuple[int, int]] = []
        """(broker id, broker epoch) of each peer reported unreachable."""
        self.replicas = ReplicaManager(
            ME,
            self.logs,
            self.follower,
            io=self.io,
            controller=ControllerClient(["127.0.0.1:1"]),
            broker_epoch=lambda: self.broker_epoch,
            lag_time_max_ms=10_000,
            report_unreachable=lambda b, e: self.reports.append((b, e)),
        )

    async def close(self) -> None:
        await self.replicas.stop()
        self.logs.close()
        self.io.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path)
    yield b


def test_a_restarted_broker_leads_nothing_until_its_registration_is_applied(
    broker: Broker,
) -> None:
    """The replayed log still says this broker leads (its old incarnation's session had not
    expired). Neither before registering, nor registered but with its image short of its
    registration record, may it act on that; once the record (with the controller's leader move
    in the same batch) is applied it follows the new leader."""

    async def main() -> None:
        try:
            deliver(
                broker.follower,
                5,
                registration(1, 3, "old"),
                registration(2, 4, "two"),
                registration(3, 5, "three"),
                topic_record(TOPIC, TOPIC_ID),
                partition_record(
                    TOPIC_ID,
                    0,
                    PartitionState(
                        replicas=(ME, BrokerId(2), BrokerId(3)),
                        isr=(ME, BrokerId(2), BrokerId(3)),
                        leader=ME,
                    ),
                ),
            )
            await broker.replicas.reconcile()
            with pytest.raises(NotLeaderOrFollowerError):
                broker.replicas.leader_partition(TOPIC, 0)
            assert broker.replicas.hosted() == [], "no role, not even a hosted log, yet"

            broker.broker_epoch = 9  # registered; its registration record is at index 9
            await broker.replicas.reconcile()
            assert broker.replicas.hosted() == [], "the image (index 5) is behind index 9"

            deliver(
                broker.follower,
                9,
                partition_change_record(TOPIC_ID, 0, isr=(BrokerId(2), BrokerId(3)), leader=2),
                registration(1, 9, "new"),
            )
            await broker.replicas.reconcile()
            (hosted,) = broker.replicas.hosted()
            assert not hosted.is_leader and hosted.leader_state is None
            assert hosted.leader_epoch == 1
            with pytest.raises(NotLeaderOrFollowerError):
                broker.replicas.leader_partition(TOPIC, 0)
        finally:
            await broker.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_registered_broker_leads_what_its_image_gives_it(broker: Broker) -> None:
    async def main() -> None:
        try:
            broker.broker_epoch = 3
            deliver(
                broker.follower,
                3,
                registration(1, 3, "mine"),
                topic_record(TOPIC, TOPIC_ID),
                partition_record(TOPIC_ID, 0, PartitionState(replicas=(ME,), isr=(ME,), leader=ME)),
            )
            await broker.replicas.reconcile()
            assert broker.replicas.leader_partition(TOPIC, 0).leader_state is not None
        finally:
            await broker.close()

    asyncio.run(asyncio.wait_for(main(), 20))


def test_a_silent_follower_holding_back_the_high_watermark_is_reported(broker: Broker) -> None:
    """A follower that sent no fetch for FOLLOWER_SILENCE_MS while the high watermark waits
    for it is reported unreachable (the controller then probes it); one that fetches, one
    outside the ISR, and a silent one when nothing waits are not."""

    async def main() -> None:
        try:
            broker.broker_epoch = 3
            deliver(
                broker.follower,
                6,
                registration(1, 3, "mine"),
                registration(2, 4, "two"),
                registration(3, 5, "three"),
                registration(4, 6, "four"),
                topic_record(TOPIC, TOPIC_ID),
                partition_record(
                    TOPIC_ID,
                    0,
                    PartitionState(
                        replicas=(ME, BrokerId(2), BrokerId(3), BrokerId(4)),
                        isr=(ME, BrokerId(2), BrokerId(3)),
                        leader=ME,
                    ),
                ),
            )
            await broker.replicas.reconcile()
            state = broker.replicas.leader_partition(TOPIC, 0).leader_state
            assert state is not None
            start = monotonic_ms()
            later = start + FOLLOWER_SILENCE_MS + 1
            assert broker.replicas.check_silent_followers(later) == [], "nothing waits yet"
            assert state.on_leader_append(5) is False  # 5 records wait for the ISR
            broker.replicas.follower_fetched(2, now_ms=later - 10)
            broker.replicas.follower_fetched(3, now_ms=start)
            assert broker.replicas.check_silent_followers(start + 10) == []
            assert broker.replicas.check_silent_followers(later) == [3]
            assert broker.reports == [(3, 5)]  # 4 is silent too, but not in the ISR
            state.on_follower_fetch(3, 5, later)  # caught up: it holds nothing back
            broker.reports.clear()
            assert broker.replicas.check_silent_followers(later + 100) == []
            assert broker.reports == []
        finally:
            await broker.close()

    asyncio.run(asyncio.wait_for(main(), 20))
