"""The ``raftka`` command line against real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def raftka(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="plaintext"),
        # The same demo over TLS + mTLS with the authorizer on: the supervisor's restarts of
        # the killed nodes must come back with their certificates. Slow: a second full demo.
        pytest.param(("--tls",), id="tls", marks=pytest.mark.slow),
    ],
)
def test_up_demo_runs_and_stops_cleanly(tmp_path: Path, extra: tuple[str, ...]) -> None:
    result = raftka(
        "up", "--demo", "--exit-after-demo", "--dir", str(tmp_path / "rk"), *extra, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Raftka is up: 3 controllers" in out and "3 brokers" in out
    assert ("TLS: every listener" in out) == bool(extra)
    assert "created topic demo" in out
    assert "kill -9 the controller leader" in out and "leads term" in out
    consumed = [ln for ln in out.splitlines() if ln.strip().startswith("demo-") and "value=" in ln]
    assert len(consumed) == 18, "every record produced (9 + 6 + 3 around two failovers) is consumed"
    assert sum("value=second" in ln for ln in consumed) == 6
    assert sum("value=third" in ln for ln in consumed) == 3
    assert "the producer retries until a new leader takes over" in out
    assert "stopped." in out
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "rk")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "raftka up left processes behind"


def test_admin_commands_without_a_cluster_say_what_to_do(tmp_path: Path) -> None:
    result = raftka("topics", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "--bootstrap-controller" in result.stderr and "raftka up" in result.stderr
    unreachable = raftka(
        "quorum",
        "describe",
        "--bootstrap-controller",
        "127.0.0.1:1",
        "--timeout",
        "1",
        cwd=tmp_path,
    )
    assert unreachable.returncode == 1
    assert "127.0.0.1:1" in unreachable.stderr and "raftka up" in unreachable.stderr
    assert "within 1s" in unreachable.stderr
