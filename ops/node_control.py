"""What ``raftka node list|kill|pause|resume|restart`` does to the nodes of a local cluster that
``raftka up`` runs: the nodes and their processes come from ``cluster.json``.

kill, pause and resume signal the node's process directly (SIGKILL, SIGSTOP, SIGCONT), but only
after checking that the PID still belongs to that node (proc.py: its command line names the
node's config file and it started when recorded), and then wait until the process is dead,
stopped or running again. restart asks the supervisor to start the node (control.py): it owns
the processes, so a restarted node is its child like the others, with the same command line,
config, data directory and log file, and a new incarnation. A node that is still running (or
paused) is not restarted: kill it first. Linux only (/proc).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from raftka.common.errors import RaftkaError
from raftka.ops.cluster_file import NodeEntry, read_nodes, read_supervisor
from raftka.ops.control import ask_supervisor
from raftka.ops.proc import ProcessState, is_node_process, is_same_process, node_process_state

POLL_S = 0.02


class LocalClusterError(RaftkaError):
    """No such cluster or node, or the node is not in a state the command can act on."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    entry: NodeEntry
    state: ProcessState

    @property
    def node_id(self) -> int:
        return self.entry.node_id

    @property
    def pid(self) -> int | None:
        return self.entry.process.pid if self.entry.process else None

    @property
    def label(self) -> str:
        return f"node {self.node_id} ({', '.join(self.entry.roles)})"


def status_of(entry: NodeEntry) -> NodeStatus:
    process = entry.process
    state = node_process_state(
        process.pid if process else None, entry.config, process.started if process else None
    )
    return NodeStatus(entry, state)


def node_statuses(directory: Path) -> list[NodeStatus]:
    entries = read_nodes(directory)
    if not entries:
        raise LocalClusterError(
            f"no local cluster in {directory} (no cluster.json listing nodes): start one with "
            f"`raftka up --dir {directory}`, or point to the directory you gave `raftka up --dir`"
        )
    return [status_of(e) for e in entries]


def supervisor_running(directory: Path) -> bool:
    """Is the `raftka up` that wrote the directory's cluster.json still running?"""
    supervisor = read_supervisor(directory)
    return supervisor is not None and is_same_process(supervisor.pid, supervisor.started)


def node_status(directory: Path, node_id: int) -> NodeStatus:
    statuses = node_statuses(directory)
    for status in statuses:
        if status.node_id == node_id:
            return status
    ids = ", ".join(str(s.node_id) for s in statuses)
    raise LocalClusterError(f"no node {node_id} in the cluster in {directory} (nodes: {ids})")


def kill_node(directory: Path, node_id: int, timeout_s: float = 5.0) -> str:
    """kill -9 (a paused node too); returns once the process is dead."""
    status = _live(directory, node_id, "kill")
    _signal(status, signal.SIGKILL)
    _wait_for(status, {ProcessState.EXITED}, timeout_s, "die")
    return f"{status.label} killed (SIGKILL, pid {status.pid})"


def pause_node(directory: Path, node_id: int, timeout_s: float = 5.0) -> str:
    status = _live(directory, node_id, "pause")
    if status.state is ProcessState.PAUSED:
        return f"{status.label} is already paused (pid {status.pid})"
    _signal(status, signal.SIGSTOP)
    _wait_for(status, {ProcessState.PAUSED}, timeout_s, "stop")
    return (
        f"{status.label} paused (SIGSTOP, pid {status.pid}); resume: raftka node resume {node_id}"
    )


def resume_node(directory: Path, node_id: int, timeout_s: float = 5.0) -> str:
    status = _live(directory, node_id, "resume")
    if status.state is ProcessState.RUNNING:
        return f"{status.label} is not paused (pid {status.pid})"
    _signal(status, signal.SIGCONT)
    _wait_for(status, {ProcessState.RUNNING}, timeout_s, "run again")
    return f"{status.label} resumed (SIGCONT, pid {status.pid})"


def restart_node(directory: Path, node_id: int, timeout_s: float = 15.0) -> str:
    """Ask the supervisor to start a node that exited (same config, data and log)."""
    status = node_status(directory, node_id)
    if status.state is not ProcessState.EXITED:
        raise LocalClusterError(
            f"{status.label} is {status.state.value} (pid {status.pid}): restart starts a node "
            f"that exited; kill it first (`raftka node kill {node_id}`)"
        )
    answer = ask_supervisor(directory, "restart", node_id, timeout_s)
    return (
        f"{status.label} started: pid {answer.get('pid')}, incarnation {answer.get('incarnation')}"
    )


def _live(directory: Path, node_id: int, action: str) -> NodeStatus:
    status = node_status(directory, node_id)
    if status.state is ProcessState.EXITED:
        how = f" ({status.entry.exit})" if status.entry.exit else ""
        raise LocalClusterError(
            f"cannot {action} {status.label}: it is not running{how}; start it with "
            f"`raftka node restart {node_id}`"
        )
    return status


def _signal(status: NodeStatus, sig: signal.Signals) -> None:
    """Signal the node's process, checking once more, right before, that the PID is its."""
    process = status.entry.process
    if process is None or not is_node_process(process.pid, status.entry.config, process.started):
        raise LocalClusterError(f"{status.label} is not running any more")
    try:
        os.kill(process.pid, sig)
    except ProcessLookupError:
        raise LocalClusterError(f"{status.label} is not running any more") from None


def _wait_for(status: NodeStatus, states: set[ProcessState], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while status_of(status.entry).state not in states:
        if time.monotonic() > deadline:
            raise LocalClusterError(
                f"{status.label} (pid {status.pid}) did not {what} within {timeout_s:g}s"
            )
        time.sleep(POLL_S)
