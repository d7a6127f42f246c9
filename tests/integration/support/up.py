"""``raftka up`` as a subprocess, its output in a file, and ``raftka`` commands beside it
(found through $RAFTKA_CLUSTER_DIR, as a user's shell would)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security.tls import ChannelSecurity
from raftka.ops.cluster_file import read_cluster_file, read_nodes, read_tls_files
from raftka.ops.proc import is_node_process
from tests.conditions import wait_until


class Up:
    """``raftka up --dir <tmp>/cluster --controllers 1 --brokers 2 [extra]``."""

    def __init__(self, tmp_path: Path, extra: Sequence[str] = ()) -> None:
        self.directory = tmp_path / "cluster"
        self.output = tmp_path / "up.out"
        self.env = {**os.environ, "RAFTKA_CLUSTER_DIR": str(self.directory)}
        for name in list(self.env):
            if name.startswith("RAFTKA_") and name != "RAFTKA_CLUSTER_DIR":
                del self.env[name]
        self.cwd = tmp_path
        command = ["up", "--dir", str(self.directory), "--controllers", "1", "--brokers", "2"]
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "raftka.client.cli", *command, *extra],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=tmp_path,
                env=self.env,
            )

    @property
    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def raftka(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "raftka.client.cli", *args],
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=env or self.env,
            timeout=60,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )

    def node(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.raftka("node", *args, env=env)

    def nodes(self) -> dict[int, dict[str, Any]]:
        result = self.node("list", "--json")
        assert result.returncode == 0, result.stderr
        return {n["id"]: n for n in map(json.loads, result.stdout.splitlines())}

    def wait_ready(self) -> None:
        wait_until(lambda: "Press Ctrl-C" in self.text or self.process.poll() is not None,
                   "raftka up", timeout_s=45)  # fmt: skip
        assert self.process.poll() is None, self.text

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


@contextlib.contextmanager
def running_up(tmp_path: Path, extra: Sequence[str] = ()) -> Iterator[Up]:
    cluster = Up(tmp_path, extra)
    try:
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        print(f"--- raftka up output ---\n{cluster.text}")


def broker_epochs(directory: Path) -> dict[int, int]:
    """Registered, unfenced brokers and their epochs, as the active controller sees them
    (as the cluster's admin when it is a TLS cluster)."""
    controllers = str(read_cluster_file(directory)["bootstrap_controller"]).split(",")
    files = read_tls_files(directory)
    security = None
    if files is not None:
        security = ChannelSecurity(
            tls=True, ca_file=files.ca_file, cert_file=files.cert_file, key_file=files.key_file
        )

    async def ask() -> dict[int, int]:
        async with ControllerClient(controllers, timeout_s=2.0, security=security) as client:
            described = await client.describe_cluster()
        return {b.broker_id: b.broker_epoch for b in described.brokers if not b.fenced}

    try:
        return asyncio.run(ask())
    except RaftkaError:
        return {}
