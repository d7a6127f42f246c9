from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.support.quorum import FAST_CONTROLLER


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Three real controller processes on 127.0.0.1 with fast timeouts."""
    c = LocalCluster(tmp_path / "cluster", controllers=3, controller_settings=FAST_CONTROLLER)
    c.prepare()
    c.start()
    try:
        yield c
    finally:
        c.stop_all()
        for node_id in c.nodes:
            print(f"--- node {node_id} log tail ---\n{c.log_tail(node_id, 15)}")


@pytest.fixture(scope="module")
def broker_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three controllers and three brokers (ids 4, 5, 6) as real processes, all unfenced; shared
    by the tests of one module, which must leave every node running."""
    c = start_broker_cluster(tmp_path_factory.mktemp("brokers"), controllers=3, brokers=3)
    try:
        yield c
    finally:
        stop_broker_cluster(c)
