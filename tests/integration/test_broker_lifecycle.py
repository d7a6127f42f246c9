"""The controller side of the broker lifecycle, against three real controllers."""

from __future__ import annotations

import asyncio
import time

import pytest

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.common.errors import DuplicateBrokerRegistrationError, StaleBrokerEpochError
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb
from tests.conditions import eventually, holds_for
from tests.integration.support.quorum import (
    FAST_CONTROLLER,
    client_for,
    create_topic,
    leader_of,
    start_brokers,
    stop_brokers,
)

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = int(FAST_CONTROLLER["broker_session_timeout_ms"]) / 1000


def test_silent_broker_is_fenced_and_loses_leadership(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                await create_topic(client, "fence-me", partitions=6, rf=3)
                silent = brokers[0]
                await silent.close()  # stops heartbeating, like a kill -9
                stopped_at = time.monotonic()

                async def fenced() -> float | None:
                    described = await client.describe_cluster()
                    state = {b.broker_id: b.fenced for b in described.brokers}
                    return time.monotonic() - stopped_at if state[silent.broker_id] else None

                elapsed = await eventually(fenced, timeout_s=4 * SESSION_TIMEOUT_S, what="fencing")
                assert elapsed >= SESSION_TIMEOUT_S * 0.8, "fenced before the session timed out"
                (topic,) = await client.describe_topics(["fence-me"])
                for p in topic.partitions:
                    assert p.leader != silent.broker_id and p.leader in p.isr
                    assert silent.broker_id not in p.isr and len(p.isr) == 2
        finally:
            await stop_brokers(brokers[1:])

    asyncio.run(main())


def test_registration_rules(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = await start_brokers(cluster, count=1)
        first = brokers[0]
        try:
            # a second incarnation of a live broker is refused
            impostor = BrokerLifecycle(
                cluster.bootstrap,
                broker_id=first.broker_id,
                cluster_id=cluster.cluster_id,
                listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=1)],
            )
            with pytest.raises(DuplicateBrokerRegistrationError):
                await impostor.register()
            await impostor.close()
            # a heartbeat with a stale epoch is refused
            async with client_for(cluster) as client:
                stale = pb.BrokerHeartbeatRequest(
                    broker_id=first.broker_id, broker_epoch=first.broker_epoch - 1
                )
                with pytest.raises(StaleBrokerEpochError):
                    await client.call(lambda s, t: s.BrokerHeartbeat(stale, timeout=t))
                # a wrong cluster id is refused
                foreign = pb.RegisterBrokerRequest(
                    broker_id=9,
                    cluster_id="someone-else",
                    incarnation_id="x",
                    listeners=[cpb.Endpoint(name="C", host="h", port=1)],
                )
                with pytest.raises(Exception, match="cluster"):
                    await client.call(lambda s, t: s.RegisterBroker(foreign, timeout=t))
                # producer-id blocks are handed out contiguously
                alloc = pb.AllocateProducerIdsRequest(
                    broker_id=first.broker_id, broker_epoch=first.broker_epoch
                )
                a = await client.call(lambda s, t: s.AllocateProducerIds(alloc, timeout=t))
                b = await client.call(lambda s, t: s.AllocateProducerIds(alloc, timeout=t))
                assert b.first_producer_id == a.first_producer_id + a.count and a.count == 1000
            # after the live broker goes silent and is fenced, a new incarnation may register
            await first.close()
            replacement = BrokerLifecycle(
                cluster.bootstrap,
                broker_id=first.broker_id,
                cluster_id=cluster.cluster_id,
                listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=2)],
                heartbeat_interval_s=0.2,
            )

            async def registered() -> bool | None:
                try:
                    await replacement.register()
                except DuplicateBrokerRegistrationError:
                    return None
                return True

            await eventually(registered, timeout_s=4 * SESSION_TIMEOUT_S, what="re-registration")
            assert replacement.broker_epoch > first.broker_epoch
            await replacement.close()
        finally:
            await stop_brokers(brokers)

    asyncio.run(main())


def test_controlled_shutdown_moves_leadership_first(cluster: LocalCluster) -> None:
    async def main() -> None:
        await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            async with client_for(cluster) as client:
                await create_topic(client, "cs", partitions=6, rf=3)
                leaving = brokers[1]
                confirmed = await leaving.shutdown(timeout_s=10)
                assert confirmed, "the controller did not confirm the controlled shutdown"
                (topic,) = await client.describe_topics(["cs"])
                assert all(p.leader != leaving.broker_id for p in topic.partitions)
                assert all(leaving.broker_id not in p.isr for p in topic.partitions)
        finally:
            await stop_brokers([brokers[0], brokers[2]])

    asyncio.run(main())


def test_broker_metadata_survives_controller_failover(cluster: LocalCluster) -> None:
    async def main() -> None:
        old = await leader_of(cluster)
        brokers = await start_brokers(cluster)
        try:
            cluster.kill(old)
            await leader_of(cluster, exclude=old)
            async with client_for(cluster) as client:
                # Brokers keep heartbeating to the new leader: none is fenced after a failover.
                # The new leader starts every session afresh, so fencing would show one session
                # timeout after it took over: watch for longer than that.
                async def none_fenced() -> bool:
                    described = await client.describe_cluster()
                    ids = {b.broker_id for b in described.brokers}
                    expected = {b.broker_id for b in brokers}
                    return ids == expected and not any(b.fenced for b in described.brokers)

                checks = await holds_for(
                    none_fenced,
                    duration_s=1.5 * SESSION_TIMEOUT_S,
                    what="every broker unfenced after the failover",
                )
                assert checks >= 5
                await create_topic(client, "after-failover", partitions=3, rf=3)
        finally:
            await stop_brokers(brokers)

    asyncio.run(main())
