"""How ``raftka node restart`` asks the ``raftka up`` supervisor to start a node: request and
answer files in the cluster directory's ``control/`` folder.

The supervisor owns the node processes (it started them, reaps them and sees how they exit), so
it is the one to start a node again: with the same command line, config, data directory and
log file, as its own child. A command writes ``control/<uuid>.request`` (atomically: a
temporary name, then a rename), and the supervisor, which looks at the folder every
``POLL_S``, answers with ``control/<uuid>.answer`` and deletes the request. The command waits
for the answer with a deadline, and gives up at once if the supervisor's process is gone.
Files, not a socket: nothing to bind (a unix socket path is limited to 108 bytes, a cluster
directory is not), nothing left listening, and a request a crashed command leaves behind is
answered and then swept away.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.common.errors import RaftkaError
from raftka.common.files import atomic_write
from raftka.ops.cluster_file import read_supervisor
from raftka.ops.proc import is_same_process

CONTROL_DIR = "control"
REQUEST = ".request"
ANSWER = ".answer"
POLL_S = 0.1
STALE_ANSWER_S = 60.0
"""Answers nobody collected (the asking command died) are deleted after this long."""


class ControlError(RaftkaError):
    """The supervisor could not be asked, or refused the request (the message says why)."""


@dataclass(frozen=True, slots=True)
class ControlRequest:
    request_id: str
    action: str
    node_id: int


class ControlInbox:
    """The supervisor's side: requests waiting for an answer."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CONTROL_DIR
        self.path.mkdir(parents=True, exist_ok=True)

    def pending(self) -> list[ControlRequest]:
        """Requests in arrival order; each is taken (its file deleted) as it is returned.
        A request that cannot be read is answered with an error."""
        requests: list[ControlRequest] = []
        files = sorted(self.path.glob("*" + REQUEST), key=_mtime)
        for file in files:
            request_id = file.name[: -len(REQUEST)]
            try:
                data = json.loads(file.read_text())
                request = ControlRequest(request_id, str(data["action"]), int(data["node"]))
            except (OSError, ValueError, KeyError, TypeError) as e:
                self.answer(request_id, {"ok": False, "error": f"unreadable request: {e}"})
                request = None
            file.unlink(missing_ok=True)
            if request is not None:
                requests.append(request)
        self._sweep()
        return requests

    def answer(self, request_id: str, answer: dict[str, Any]) -> None:
        atomic_write(self.path / (request_id + ANSWER), json.dumps(answer).encode())

    def _sweep(self) -> None:
        now = time.time()
        for file in self.path.glob("*" + ANSWER):
            if now - _mtime(file) > STALE_ANSWER_S:
                file.unlink(missing_ok=True)


def ask_supervisor(
    directory: Path, action: str, node_id: int, timeout_s: float = 15.0
) -> dict[str, Any]:
    """Send a request to the supervisor of the cluster in ``directory``; return its answer
    (``{"ok": true, ...}``). Raises ControlError when there is no supervisor, it does not answer
    in time, or it refuses (with its reason)."""
    supervisor = read_supervisor(directory)
    if supervisor is None or not is_same_process(supervisor.pid, supervisor.started):
        raise ControlError(
            f"no `raftka up` is running for {directory}: the nodes are started by its supervisor"
        )
    folder = directory / CONTROL_DIR
    request_id = uuid.uuid4().hex
    request_path = folder / (request_id + REQUEST)
    answer_path = folder / (request_id + ANSWER)
    atomic_write(request_path, json.dumps({"action": action, "node": node_id}).encode())
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                answer: dict[str, Any] = json.loads(answer_path.read_text())
                break
            except FileNotFoundError:
                pass
            if not is_same_process(supervisor.pid, supervisor.started):
                raise ControlError("the `raftka up` supervisor exited before it answered")
            if time.monotonic() > deadline:
                raise ControlError(
                    f"the `raftka up` supervisor (pid {supervisor.pid}) did not answer within "
                    f"{timeout_s:g}s (is it still starting the cluster or running its demo?)"
                )
            time.sleep(POLL_S / 2)
    finally:
        request_path.unlink(missing_ok=True)
        answer_path.unlink(missing_ok=True)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error") or "the supervisor refused the request"))
    return answer


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
