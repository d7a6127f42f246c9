from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.client.local_cluster import LocalCluster
from tests.integration.helpers import FAST_CONTROLLER


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
