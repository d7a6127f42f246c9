"""Prometheus metrics of real nodes, scraped over HTTP: after a produce, a kill -9 of the
partition leader and its recovery, the scrapes show the bytes produced, the election, the ISR
shrink and expansion, the partitions healthy again, and the Produce RPCs timed."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from raftka.ops.local_cluster import LocalCluster
from tests.conditions import eventually
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.support.replication import (
    TOPIC,
    create,
    partition_state,
    produce_when_leading,
    wait_isr,
    wait_leader,
)

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of one real HTTP scrape: (name, labels) -> value."""
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


async def total(cluster: LocalCluster, node_ids: list[int], name: str, **labels: str) -> float:
    scrapes = await asyncio.gather(
        *(asyncio.to_thread(scrape, str(cluster.node(n).metrics_url)) for n in node_ids)
    )
    return sum(value(s, name, **labels) for s in scrapes)


@pytest.fixture
def mcluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path / "c", broker_settings={"replica_lag_time_max_ms": 2000}, metrics=True
    )
    try:
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def test_scrapes_show_bytes_election_and_isr_shrink_and_expansion(mcluster: LocalCluster) -> None:
    controllers = list(mcluster.nodes)

    async def main() -> None:
        await create(mcluster, min_isr=2)
        before = {
            name: await total(mcluster, controllers, name)
            for name in (
                "raftka_controller_leader_elections_total",
                "raftka_controller_isr_shrinks_total",
                "raftka_controller_isr_expands_total",
            )
        }
        old = (await partition_state(mcluster)).leader
        await eventually(
            lambda: produce_when_leading(mcluster.brokers[old].address, b"before"),
            what="a write to the first leader",
        )
        first = await asyncio.to_thread(scrape, str(mcluster.node(old).metrics_url))
        assert value(first, "raftka_broker_topic_bytes_in_total", topic=TOPIC) > 0

        mcluster.kill(old)
        new = (await wait_leader(mcluster, exclude=old)).leader
        await eventually(
            lambda: produce_when_leading(mcluster.brokers[new].address, b"after"),
            what="a write to the new leader",
        )
        mcluster.start(old)
        await wait_isr(mcluster, 3)

        brokers = [b for b in mcluster.brokers]
        assert await total(mcluster, [new], "raftka_broker_topic_bytes_in_total", topic=TOPIC) > 0
        assert (
            await total(
                mcluster,
                [new],
                "raftka_rpc_request_duration_seconds_count",
                service="BrokerService",
                method="Produce",
            )
            > 0
        )
        elections = await total(
            mcluster, controllers, "raftka_controller_leader_elections_total", kind="clean"
        )
        assert elections >= before["raftka_controller_leader_elections_total"] + 1
        assert (
            await total(
                mcluster, controllers, "raftka_controller_leader_elections_total", kind="unclean"
            )
            == 0
        )
        shrinks = await total(mcluster, controllers, "raftka_controller_isr_shrinks_total")
        expands = await total(mcluster, controllers, "raftka_controller_isr_expands_total")
        assert shrinks >= before["raftka_controller_isr_shrinks_total"] + 1
        assert expands >= before["raftka_controller_isr_expands_total"] + 1

        async def one_active_controller() -> bool | None:  # none for a moment during a vote
            return await total(mcluster, controllers, "raftka_controller_active") == 1 or None

        await eventually(one_active_controller, what="exactly one active controller")

        async def healthy() -> bool | None:
            under = await total(mcluster, brokers, "raftka_broker_under_replicated_partitions")
            led = await total(mcluster, brokers, "raftka_broker_leader_partitions")
            return True if under == 0 and led >= 1 else None

        await eventually(healthy, what="no under-replicated partition in the brokers' scrapes")
        assert (
            await total(mcluster, controllers, "raftka_controller_under_replicated_partitions") == 0
        )
        assert await total(mcluster, controllers, "raftka_controller_offline_partitions") == 0

    asyncio.run(main())
