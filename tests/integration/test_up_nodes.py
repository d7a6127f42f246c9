"""Failover by hand: ``raftka up`` keeps supervising when a node dies, and ``raftka node``
kills, pauses, resumes and restarts nodes of the cluster it runs (found through
$RAFTKA_CLUSTER_DIR), all as real processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.cluster_file import read_cluster_file, read_nodes
from raftka.ops.proc import is_node_process, stat_state
from tests.conditions import wait_until

pytestmark = pytest.mark.integration


class Up:
    """``raftka up`` as a subprocess, its output in a file, and ``raftka node`` beside it."""

    def __init__(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "cluster"
        self.output = tmp_path / "up.out"
        self.env = {**os.environ, "RAFTKA_CLUSTER_DIR": str(self.directory)}
        self.env.pop("RAFTKA_BOOTSTRAP_CONTROLLER", None)
        self.cwd = tmp_path
        command = ["up", "--dir", str(self.directory), "--controllers", "1", "--brokers", "2"]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "raftka.client.cli", *command],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
                env=self.env,
            )

    @property
    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def node(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raftka.client.cli", "node", *args],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=env or self.env,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def nodes(self) -> dict[int, dict[str, Any]]:
        result = self.node("list", "--json")
        assert result.returncode == 0, result.stderr
        return {n["id"]: n for n in map(json.loads, result.stdout.splitlines())}

    def stop(self) -> None:
        """SIGINT, as Ctrl-C; then make sure no node it started outlives the test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(45)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for entry in read_nodes(self.directory):
            p = entry.process
            if p is not None and is_node_process(p.pid, entry.config, p.started):
                os.kill(p.pid, signal.SIGKILL)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    cluster = Up(tmp_path)
    try:
        wait_until(lambda: "Press Ctrl-C" in cluster.text or cluster.process.poll() is not None,
                   "raftka up", timeout_s=45)  # fmt: skip
        assert cluster.process.poll() is None, cluster.text
        yield cluster
    finally:
        cluster.stop()
        print(f"--- raftka up output ---\n{cluster.text}")


def broker_epochs(directory: Path) -> dict[int, int]:
    """Registered, unfenced brokers and their epochs, as the active controller sees them."""
    controllers = str(read_cluster_file(directory)["bootstrap_controller"]).split(",")

    async def ask() -> dict[int, int]:
        async with ControllerClient(controllers, timeout_s=2.0) as client:
            described = await client.describe_cluster()
        return {b.broker_id: b.broker_epoch for b in described.brokers if not b.fenced}

    try:
        return asyncio.run(ask())
    except RaftkaError:
        return {}


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
