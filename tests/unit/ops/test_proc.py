"""The PID check: a PID from cluster.json is taken for a node only if its process runs that
node's config and started when recorded, so a stale or reused PID is never signalled."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from raftka.ops.proc import (
    ProcessState,
    cmdline,
    is_node_process,
    is_same_process,
    node_process_state,
    start_time,
    stat_state,
)
from tests.conditions import wait_until

CONFIG = "/c/broker-5/node.toml"
SERVER_ARGS = ["/venv/bin/python", "-m", "raftka.client.cli", "server", "--config", CONFIG]


def fake_proc(
    root: Path, pid: int, *, args: list[str], state: str = "S", started: int = 5000
) -> Path:
    """A /proc/PID with the two files the check reads; the command name holds ') (' on
    purpose, as a process may name itself."""
    d = root / str(pid)
    d.mkdir(parents=True)
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in args))
    fields = [state, *["0"] * 18, str(started), "0", "0"]  # state is field 3, start field 22
    (d / "stat").write_text(f"{pid} (py) (thon) " + " ".join(fields) + "\n")
    return root


def test_a_node_process_is_recognised_by_its_config_and_start_time(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, 10, args=SERVER_ARGS)
    assert start_time(10, proc) == 5000 and stat_state(10, proc) == "S"
    assert cmdline(10, proc) == SERVER_ARGS
    assert is_node_process(10, CONFIG, 5000, proc)
    assert is_node_process(10, CONFIG, None, proc)
    assert node_process_state(10, CONFIG, 5000, proc) is ProcessState.RUNNING


def test_a_pid_of_something_else_is_never_the_node(tmp_path: Path) -> None:
    fake_proc(tmp_path, 11, args=["/usr/bin/vim", CONFIG])  # names the file, runs no server
    fake_proc(tmp_path, 12, args=[*SERVER_ARGS[:-1], "/c/broker-6/node.toml"])  # another node
    fake_proc(tmp_path, 13, args=[*SERVER_ARGS[:-1], CONFIG + ".bak"])  # only a prefix
    fake_proc(tmp_path, 14, args=SERVER_ARGS, started=6000)  # the node, a later incarnation
    fake_proc(tmp_path, 15, args=[], state="Z")  # a zombie: its command line is gone
    for pid in (11, 12, 13, 14, 15, 16):  # 16: no such process
        assert not is_node_process(pid, CONFIG, 5000, tmp_path), pid
        assert node_process_state(pid, CONFIG, 5000, tmp_path) is ProcessState.EXITED
    assert not is_node_process(0, CONFIG, None, tmp_path)
    assert node_process_state(None, CONFIG, None, tmp_path) is ProcessState.EXITED


def test_a_stopped_node_reads_as_paused(tmp_path: Path) -> None:
    fake_proc(tmp_path, 20, args=SERVER_ARGS, state="T")
    assert node_process_state(20, CONFIG, 5000, tmp_path) is ProcessState.PAUSED


@pytest.fixture
def server_lookalike(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A real process whose command line looks like a node's (it only waits)."""
    config = str(tmp_path / "node.toml")
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "server", "--config", config],
        stdin=subprocess.PIPE,
    )
    try:
        yield process, config
    finally:
        process.kill()
        process.wait()


def until_state(pid: int, config: str, started: int | None, state: ProcessState) -> None:
    wait_until(
        lambda: node_process_state(pid, config, started) is state,
        f"process {pid} becoming {state.value}",
        timeout_s=10,
    )


def test_against_a_real_process(server_lookalike: tuple[subprocess.Popen[bytes], str]) -> None:
    process, config = server_lookalike
    started = start_time(process.pid)
    assert started is not None
    assert is_node_process(process.pid, config, started)
    assert not is_node_process(process.pid, config, started + 1)
    assert not is_node_process(process.pid, config + "x", started)
    assert is_same_process(process.pid, started)
    process.send_signal(signal.SIGSTOP)
    until_state(process.pid, config, started, ProcessState.PAUSED)
    process.send_signal(signal.SIGCONT)
    until_state(process.pid, config, started, ProcessState.RUNNING)
    process.kill()
    until_state(process.pid, config, started, ProcessState.EXITED)  # a zombie until reaped
    # The command line goes first while the process dies; it is a zombie a moment later.
    wait_until(
        lambda: not is_same_process(process.pid, started),
        "the killed process a zombie",
        timeout_s=10,
    )
    process.wait()
    assert not is_node_process(process.pid, config, started)
