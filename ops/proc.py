"""What Linux's /proc says about a process: its command line, state and start time.

``raftka node`` signals processes it did not start, by PIDs read from ``cluster.json``. A PID is
reused once its process is gone, so before it signals one it checks that the PID still belongs
to that node: the command line runs a ``raftka server`` with that node's config file, and the
process started at the recorded time (clock ticks since boot, field 22 of /proc/PID/stat), so
neither another program nor a later incarnation of the same node is ever mistaken for it.
"""

from __future__ import annotations

import enum
import itertools
from pathlib import Path

PROC = Path("/proc")


class ProcessState(enum.Enum):
    RUNNING = "running"
    PAUSED = "paused"
    """Stopped by a signal (SIGSTOP): /proc/PID/stat says ``T``."""
    EXITED = "exited"
    """Gone, a zombie nobody has reaped yet, or the PID now belongs to another process."""


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces and
    parentheses, so the split is at the last ``)``): index 0 is the state (field 3)."""
    try:
        text = (proc / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    _, sep, rest = text.rpartition(")")
    return rest.split() if sep else None


def stat_state(pid: int, proc: Path = PROC) -> str | None:
    """The state letter (``R``, ``S``, ``D``, ``T``, ``t``, ``Z`` ...), or None if no such PID."""
    fields = _stat_fields(pid, proc)
    return fields[0] if fields else None


def start_time(pid: int, proc: Path = PROC) -> int | None:
    """When the process started, in clock ticks since boot; None if no such PID."""
    fields = _stat_fields(pid, proc)
    if fields is None or len(fields) < 20:
        return None
    try:
        return int(fields[19])  # field 22 of /proc/PID/stat
    except ValueError:
        return None


def cmdline(pid: int, proc: Path = PROC) -> list[str]:
    """The process's arguments (empty for a zombie, a kernel thread or no such PID)."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_node_process(
    pid: int, config_path: str, started: int | None = None, proc: Path = PROC
) -> bool:
    """Does ``pid`` run ``raftka server --config <config_path>`` (and, when ``started`` is
    given, did it start then)? False for a zombie: its command line is gone."""
    if pid <= 0:
        return False
    args = cmdline(pid, proc)
    if "server" not in args or not any(
        a == "--config" and b == config_path for a, b in itertools.pairwise(args)
    ):
        return False
    return started is None or start_time(pid, proc) == started


def is_same_process(pid: int, started: int | None, proc: Path = PROC) -> bool:
    """Is ``pid`` still the process that started at ``started`` (not a zombie)?"""
    if pid <= 0 or started is None:
        return False
    return start_time(pid, proc) == started and stat_state(pid, proc) not in ("Z", "X", None)


def node_process_state(
    pid: int | None, config_path: str, started: int | None, proc: Path = PROC
) -> ProcessState:
    if pid is None or not is_node_process(pid, config_path, started, proc):
        return ProcessState.EXITED
    state = stat_state(pid, proc)
    if state in ("T", "t"):
        return ProcessState.PAUSED
    if state in (None, "Z", "X"):
        return ProcessState.EXITED
    return ProcessState.RUNNING
