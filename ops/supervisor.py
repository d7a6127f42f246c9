"""The ``raftka up`` supervisor: keeps ``cluster.json`` true, reports each node that dies, and
starts nodes again when ``raftka node restart`` asks (see control.py).

A node that exits does not stop the cluster: it is reported once per incarnation
(``node 5 (broker) exited: killed by signal 9 (SIGKILL)``) and the rest keeps running, so
failovers can be tried by hand. Only Ctrl-C (or SIGTERM) stops the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raftka.ops.cluster_file import NodeEntry, ProcessEntry, write_cluster_file
from raftka.ops.control import POLL_S, ControlInbox, ControlRequest
from raftka.ops.local_cluster import LocalCluster, NodeProcess
from raftka.ops.proc import start_time


def describe_exit(returncode: int) -> str:
    """``killed by signal 9 (SIGKILL)`` or ``exited with code 1``, from a Popen returncode."""
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return f"killed by signal {-returncode}{name}"
    return f"exited with code {returncode}"


def _print_now(line: str) -> None:
    print(line, flush=True)  # stdout may be a pipe: the line must not wait in a buffer


class Supervisor:
    def __init__(
        self,
        cluster: LocalCluster,
        cluster_info: dict[str, Any],
        out: Callable[[str], None] | None = None,
    ) -> None:
        """``cluster_info`` is what cluster.json holds besides the nodes (bootstrap addresses,
        cluster id, and a TLS cluster's CA and admin certificate)."""
        self.cluster = cluster
        self._info = dict(cluster_info)
        self._out = out or _print_now
        self._inbox = ControlInbox(cluster.base_dir)
        self._exits: dict[int, tuple[int, str]] = {}
        """node id -> (incarnation, how it ended), once seen: each death is reported once."""
        self._written: list[dict[str, Any]] | None = None
        self._me = ProcessEntry(os.getpid(), start_time(os.getpid()))

    @property
    def directory(self) -> Path:
        return self.cluster.base_dir

    # ------------------------------------------------------------------ cluster.json

    def entries(self) -> list[NodeEntry]:
        return [self._entry(n) for n in self._nodes()]

    def _nodes(self) -> list[NodeProcess]:
        return list({**self.cluster.nodes, **self.cluster.brokers}.values())

    def _entry(self, node: NodeProcess) -> NodeEntry:
        process = None
        if node.process is not None:
            process = ProcessEntry(node.process.pid, node.started)
        exit_ = self._exits.get(node.node_id)
        return NodeEntry(
            node_id=node.node_id,
            roles=node.roles,
            addresses={
                role: node.broker_address if role == "broker" else node.address
                for role in node.roles
            },
            config=str(node.config_path),
            log=str(node.log_path),
            process=process,
            incarnation=node.incarnation,
            exit=exit_[1] if exit_ and exit_[0] == node.incarnation else None,
        )

    def write(self) -> None:
        """Rewrite cluster.json if what it should say changed (a node started or exited)."""
        nodes = [e.to_json() for e in self.entries()]
        if nodes == self._written:
            return
        write_cluster_file(
            self.directory, {**self._info, "supervisor": self._me.to_json(), "nodes": nodes}
        )
        self._written = nodes

    # ------------------------------------------------------------------ supervising

    def check(self) -> None:
        """Report nodes that died, answer requests, keep cluster.json up to date."""
        self._report_deaths()
        for request in self._inbox.pending():
            self._inbox.answer(request.request_id, self._handle(request))
        self.write()

    async def run(self, stop: asyncio.Event) -> None:
        """Check every POLL_S until ``stop`` is set."""
        while not stop.is_set():
            self.check()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)

    def _report_deaths(self) -> None:
        for node in self._nodes():
            if node.process is None or node.running:
                continue
            seen = self._exits.get(node.node_id)
            if seen is not None and seen[0] == node.incarnation:
                continue
            how = describe_exit(node.process.returncode)
            self._exits[node.node_id] = (node.incarnation, how)
            self._out(
                f"node {node.node_id} ({node.role}) exited: {how}; the others keep running "
                f"(log: {node.log_path}; start it again: raftka node restart {node.node_id})"
            )

    def _handle(self, request: ControlRequest) -> dict[str, Any]:
        if request.action != "restart":
            return {"ok": False, "error": f"unknown action {request.action!r}"}
        node = next((n for n in self._nodes() if n.node_id == request.node_id), None)
        if node is None:
            ids = ", ".join(str(n.node_id) for n in self._nodes())
            return {"ok": False, "error": f"no node {request.node_id} in this cluster ({ids})"}
        if node.running:
            assert node.process is not None
            return {
                "ok": False,
                "error": f"node {node.node_id} is still running or paused (pid "
                f"{node.process.pid}): restart starts a node that exited; kill it first "
                f"(`raftka node kill {node.node_id}`)",
            }
        self.cluster.start(node.node_id)
        assert node.process is not None
        self._out(
            f"node {node.node_id} ({node.role}) started again: pid {node.process.pid}, "
            f"incarnation {node.incarnation}"
        )
        self.write()
        return {
            "ok": True,
            "node": node.node_id,
            "pid": node.process.pid,
            "incarnation": node.incarnation,
        }
