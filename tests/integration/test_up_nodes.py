"""Failover by hand: ``raftka up`` keeps supervising when a node dies, and ``raftka node``
kills, pauses, resumes and restarts nodes of the cluster it runs (found through
$RAFTKA_CLUSTER_DIR), all as real processes on 127.0.0.1."""

from __future__ import annotations

import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from raftka.ops.cluster_file import read_cluster_file
from raftka.ops.proc import stat_state
from tests.conditions import wait_until
from tests.integration.support.up import Up, broker_epochs, running_up

pytestmark = pytest.mark.integration


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with running_up(tmp_path) as cluster:
        yield cluster


def test_kill_pause_resume_and_restart_nodes_by_hand(up: Up) -> None:
    assert f"export RAFTKA_CLUSTER_DIR={up.directory}" in up.text
    nodes = up.nodes()
    assert sorted(nodes) == [1, 2, 3]
    assert [nodes[i]["roles"] for i in (1, 2, 3)] == [["controller"], ["broker"], ["broker"]]
    for n in nodes.values():
        assert n["state"] == "running" and n["incarnation"] == 1 and n["pid"] > 0
        assert all(a.startswith("127.0.0.1:") for a in n["addresses"].values())
    table = up.node("list").stdout.splitlines()
    assert table[0].split() == ["ID", "ROLES", "ADDRESS", "PID", "STATE", "INCARNATION"]
    assert table[3].split()[:5] == ["3", "broker", nodes[3]["addresses"]["broker"],
                                    str(nodes[3]["pid"]), "running"]  # fmt: skip
    without_env = {k: v for k, v in up.env.items() if k != "RAFTKA_CLUSTER_DIR"}
    assert up.node("list", env=without_env).returncode == 1, "./raftka-data holds no cluster"
    by_dir = up.node("list", "--json", "--dir", str(up.directory), env=without_env)
    assert len(by_dir.stdout.splitlines()) == 3, by_dir.stderr
    epoch_before = broker_epochs(up.directory)[3]

    # Every node serves metrics where `raftka up` says (and cluster.json records).
    urls = read_cluster_file(up.directory)["metrics"]
    assert sorted(urls) == ["1", "2", "3"]
    for node_id, url in urls.items():
        assert f"node {node_id}: {url}" in up.text
    with urllib.request.urlopen(urls["1"], timeout=5) as response:
        assert b"raftka_controller_active 1.0" in response.read()

    # The brokers' Kafka listeners: `raftka up` prints the bootstrap address, Kafka clients
    # find both brokers there.
    kafka = str(read_cluster_file(up.directory)["kafka_bootstrap_servers"])
    assert f"bootstrap.servers={kafka}" in up.text
    assert sorted(AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=10).brokers) == [
        2,
        3,
    ]

    # kill -9 a broker: reported once, the supervisor and the others keep running.
    killed = up.node("kill", "3")
    assert killed.returncode == 0 and "killed" in killed.stdout, killed.stderr
    wait_until(lambda: "node 3 (broker) exited: killed by signal 9" in up.text, "death line")
    assert up.process.poll() is None, "the supervisor keeps running"
    wait_until(lambda: up.nodes()[3].get("exit") is not None, "cluster.json records the exit")
    after = up.nodes()
    assert after[3]["state"] == "exited" and after[3]["exit"] == "killed by signal 9 (SIGKILL)"
    assert after[1]["state"] == after[2]["state"] == "running"
    again = up.node("kill", "3")
    assert again.returncode == 1 and "not running" in again.stderr

    # restart: refused for a running node, done for the dead one.
    refused = up.node("restart", "2")
    assert refused.returncode == 1 and "kill it first" in refused.stderr
    restarted = up.node("restart", "3")
    assert restarted.returncode == 0, restarted.stderr
    assert "incarnation 2" in restarted.stdout
    back = up.nodes()[3]
    assert back["state"] == "running" and back["incarnation"] == 2 and back["exit"] is None
    assert back["pid"] != nodes[3]["pid"]
    assert back["addresses"] == nodes[3]["addresses"] and back["config"] == nodes[3]["config"]
    assert up.nodes()[2]["incarnation"] == 1
    wait_until(lambda: broker_epochs(up.directory).get(3, -1) > epoch_before,
               "the restarted broker registered again and unfenced", timeout_s=30)  # fmt: skip
    assert up.text.count("exited:") == 1, "each death is reported once"

    # pause / resume: the process is stopped ('T') and runs again.
    pid = nodes[2]["pid"]
    assert up.node("pause", "2").returncode == 0
    assert stat_state(pid) == "T" and up.nodes()[2]["state"] == "paused"
    assert up.node("resume", "2").returncode == 0
    assert stat_state(pid) not in ("T", "t", None) and up.nodes()[2]["state"] == "running"

    # Ctrl-C stops everything, the restarted node included.
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(45) == 0
    assert "stopped." in up.text
    for n in up.nodes().values():
        assert n["state"] == "exited"
    assert up.node("restart", "3").returncode == 1
