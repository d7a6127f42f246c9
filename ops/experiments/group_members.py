"""Starts, kills, pauses and restarts recording group members (``group_member`` processes).

Used by the group workload, the real-process tests and ``scripts/bench_groups.py``. Member
``i``'s incarnations are labelled ``c<i>#<n>`` and all write to ``c<i>.jsonl`` in ``out_dir``;
a static member (``static=True``) keeps the instance id ``c<i>`` across restarts.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from raftka.ops.experiments.group_history import GroupEvent, load_events


@dataclass(slots=True)
class _Member:
    index: int
    incarnation: int = -1
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False


class GroupMembers:
    def __init__(
        self,
        out_dir: Path,
        bootstrap_servers: Sequence[str],
        topic: str,
        group: str,
        *,
        session_timeout_ms: int | None = None,
        auto_commit_interval_ms: int | None = None,
        static: bool = False,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self._base = [
            sys.executable,
            "-m",
            "raftka.ops.experiments.group_member",
            "--bootstrap-server",
            ",".join(bootstrap_servers),
            "--topic",
            topic,
            "--group",
            group,
        ]
        if session_timeout_ms is not None:
            self._base += ["--session-timeout-ms", str(session_timeout_ms)]
        if auto_commit_interval_ms is not None:
            self._base += ["--auto-commit-interval-ms", str(auto_commit_interval_ms)]
        self._base += list(extra_args)
        self._static = static
        self._members: dict[int, _Member] = {}

    def events_path(self, index: int) -> Path:
        return self.out_dir / f"c{index}.jsonl"

    def label(self, index: int) -> str:
        """The running (or last) incarnation's member label."""
        return f"c{index}#{self._members[index].incarnation}"

    def start(self, index: int) -> str:
        """Start member ``index`` (a new incarnation if it ran before); returns its label."""
        member = self._members.setdefault(index, _Member(index))
        if member.process is not None and member.process.poll() is None:
            raise RuntimeError(f"member c{index} is already running")
        member.incarnation += 1
        label = self.label(index)
        args = [*self._base, "--member", label, "--events", str(self.events_path(index))]
        if self._static:
            args += ["--instance-id", f"c{index}"]
        stderr = (self.out_dir / f"c{index}.log").open("ab")
        member.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True
        )
        stderr.close()
        member.paused = False
        return label

    def indexes(self) -> list[int]:
        return sorted(self._members)

    def running(self, index: int) -> bool:
        p = self._members[index].process
        return p is not None and p.poll() is None

    def paused(self, index: int) -> bool:
        return self._members[index].paused

    def kill(self, index: int) -> None:
        """SIGKILL: the member vanishes without leaving the group or committing."""
        self._signal(index, signal.SIGKILL)
        process = self._members[index].process
        if process is not None:
            process.wait()
        self._members[index].paused = False

    def pause(self, index: int) -> None:
        self._signal(index, signal.SIGSTOP)
        self._members[index].paused = True

    def resume(self, index: int) -> None:
        self._signal(index, signal.SIGCONT)
        self._members[index].paused = False

    def stop(self, index: int, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (after SIGCONT if paused): the member commits and leaves; SIGKILL after
        ``timeout_s``. Returns the exit status."""
        member = self._members[index]
        process = member.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        if member.paused:
            self.resume(index)
        self._signal(index, signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(index)
            return process.returncode

    def stop_all(self, timeout_s: float = 20.0) -> None:
        for index in self.indexes():
            if self.paused(index):
                self.resume(index)
        for index in self.indexes():
            with contextlib.suppress(ProcessLookupError):
                self._signal(index, signal.SIGTERM)
        for index in self.indexes():
            self.stop(index, timeout_s)

    def events(self) -> list[GroupEvent]:
        return load_events(p for i in self.indexes() if (p := self.events_path(i)).exists())

    def _signal(self, index: int, sig: signal.Signals) -> None:
        process = self._members[index].process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)

    def __enter__(self) -> GroupMembers:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all(timeout_s=5.0)
