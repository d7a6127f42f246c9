"""The `raftka up` supervisor without real nodes: each death is reported once and the rest keeps
running, cluster.json follows every start and exit, and `raftka node restart` reaches it
through the control folder (which refuses a running node, and needs a live supervisor)."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.ops.cluster_file import ProcessEntry, read_nodes, write_cluster_file
from raftka.ops.control import CONTROL_DIR, ControlError, ControlInbox, ask_supervisor
from raftka.ops.local_cluster import LocalCluster
from raftka.ops.proc import start_time
from raftka.ops.supervisor import Supervisor, describe_exit


def test_exits_are_described_as_a_person_would() -> None:
    assert describe_exit(-9) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(-15) == "killed by signal 15 (SIGTERM)"
    assert describe_exit(1) == "exited with code 1"
    assert describe_exit(0) == "exited with code 0"


class Lookalikes:
    """A LocalCluster (1 controller, 2 brokers) whose nodes are processes that only wait."""

    def __init__(self, base: Path) -> None:
        self.cluster = LocalCluster(base, controllers=1, brokers=2)
        self.cluster.start = self.start  # type: ignore[method-assign]
        self.lines: list[str] = []
        self.supervisor = Supervisor(self.cluster, {"cluster_id": "c"}, out=self.lines.append)

    def start(self, node_id: int | None = None) -> None:
        for node in self.cluster._all().values():
            if (node_id is None or node.node_id == node_id) and not node.running:
                node.process = subprocess.Popen(
                    [sys.executable, "-c", "import sys; sys.stdin.read()"],
                    stdin=subprocess.PIPE,
                )
                node.incarnation += 1
                node.started = start_time(node.process.pid)

    def stop(self) -> None:
        for node in self.cluster._all().values():
            if node.process is not None:
                node.process.kill()
                node.process.wait()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Lookalikes]:
    n = Lookalikes(tmp_path)
    n.start()
    n.supervisor.write()
    try:
        yield n
    finally:
        n.stop()


def test_a_death_is_reported_once_and_the_others_keep_running(nodes: Lookalikes) -> None:
    victim = nodes.cluster.brokers[3]
    assert victim.process is not None
    victim.process.kill()
    victim.process.wait()
    nodes.supervisor.check()
    nodes.supervisor.check()
    assert nodes.lines == [
        f"node 3 (broker) exited: killed by signal 9 (SIGKILL); the others keep running "
        f"(log: {victim.log_path}; start it again: raftka node restart 3)"
    ]
    assert nodes.cluster.nodes[1].running and nodes.cluster.brokers[2].running
    recorded = {e.node_id: e for e in read_nodes(nodes.cluster.base_dir)}
    assert recorded[3].exit == "killed by signal 9 (SIGKILL)" and recorded[3].incarnation == 1
    assert recorded[2].exit is None
    assert recorded[2].process == ProcessEntry(
        nodes.cluster.brokers[2].process.pid,  # type: ignore[union-attr]
        nodes.cluster.brokers[2].started,
    )


class Serving:
    """The supervisor's checks, run in a thread (as its loop would) while the test asks."""

    def __init__(self, nodes: Lookalikes) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(nodes,), daemon=True)

    def _serve(self, nodes: Lookalikes) -> None:
        while not self.stop.wait(0.005):
            nodes.supervisor.check()

    def __enter__(self) -> Serving:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def test_restart_starts_a_dead_node_again_with_a_new_incarnation(nodes: Lookalikes) -> None:
    directory = nodes.cluster.base_dir
    victim = nodes.cluster.brokers[2]
    assert victim.process is not None
    old_pid = victim.process.pid
    victim.process.kill()
    victim.process.wait()
    nodes.supervisor.check()
    with Serving(nodes):
        answer = ask_supervisor(directory, "restart", 2, timeout_s=10)
    assert answer["ok"] and answer["incarnation"] == 2 and answer["pid"] != old_pid
    recorded = {e.node_id: e for e in read_nodes(directory)}
    assert recorded[2].incarnation == 2 and recorded[2].exit is None
    assert recorded[2].process is not None and recorded[2].process.pid == answer["pid"]
    assert nodes.lines[-1] == f"node 2 (broker) started again: pid {answer['pid']}, incarnation 2"
    assert sorted(p.name for p in (directory / CONTROL_DIR).iterdir()) == [], "nothing left"


def test_restart_refuses_a_running_node_and_an_unknown_one(nodes: Lookalikes) -> None:
    directory = nodes.cluster.base_dir
    for node_id, reason in ((3, "still running or paused"), (9, "no node 9 in this cluster")):
        with Serving(nodes), pytest.raises(ControlError, match=reason):
            ask_supervisor(directory, "restart", node_id, timeout_s=10)
    assert nodes.cluster.brokers[3].incarnation == 1


def test_without_a_live_supervisor_a_request_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="no `raftka up` is running"):
        ask_supervisor(tmp_path, "restart", 1)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_cluster_file(tmp_path, {"supervisor": ProcessEntry(gone.pid, 1).to_json()})
    with pytest.raises(ControlError, match="no `raftka up` is running"):
        ask_supervisor(tmp_path, "restart", 1)


def test_an_unreadable_request_is_answered_with_an_error(tmp_path: Path) -> None:
    inbox = ControlInbox(tmp_path)
    (inbox.path / "abc.request").write_text("{not json")
    assert inbox.pending() == []
    assert "unreadable request" in (inbox.path / "abc.answer").read_text()
    assert not (inbox.path / "abc.request").exists()
