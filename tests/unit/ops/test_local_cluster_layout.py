"""LocalCluster's node layouts, as written to the nodes' config files (no process started)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from raftka.ops.local_cluster import LocalCluster


def test_combined_nodes_run_both_roles_on_two_listeners(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, controllers=3, combined=True, kafka=True)
    cluster.prepare()
    assert sorted(cluster.nodes) == sorted(cluster.brokers) == [1, 2, 3]
    assert len(cluster._all()) == 3, "one process per node"
    for node_id, node in cluster.nodes.items():
        config = tomllib.loads(node.config_path.read_text())
        assert config["roles"] == ["controller", "broker"]
        assert config["broker"]["listen"] == node.broker_address != node.address
        assert f"{node_id}@{node.address}" in config["controller"]["voters"]
        assert config["broker"]["kafka_listen"] == f"127.0.0.1:{node.kafka_port}"
    assert cluster.bootstrap_servers == [n.broker_address for n in cluster.nodes.values()]


def test_separate_nodes_keep_one_role_each(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, controllers=1, brokers=2)
    cluster.prepare()
    roles = {
        i: tomllib.loads(n.config_path.read_text())["roles"] for i, n in cluster._all().items()
    }
    assert roles == {1: ["controller"], 2: ["broker"], 3: ["broker"]}
    assert cluster.bootstrap_servers == [n.address for n in cluster.brokers.values()]


def test_a_combined_cluster_takes_no_separate_brokers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="combined"):
        LocalCluster(tmp_path, controllers=3, brokers=2, combined=True)
