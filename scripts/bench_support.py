"""Helpers for the benchmark scripts: CPU and memory of a process from /proc, a profiler run
alongside, and a driver that keeps N unary calls in flight and records their latencies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Call = Callable[[bytes], Awaitable[bytes]]
PY_SPY = f"{Path(sys.executable).parent}/py-spy record -r 200 -f raw -o {{out}}.txt -p {{pid}}"
"""The default profiler command for ``profiled`` (py-spy installed next to this Python)."""


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon, RssFile and VmHWM of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


@contextlib.contextmanager
def profiled(template: str, pid: int, out: Path | None) -> Iterator[None]:
    """Run the profiler command ``template`` ({pid}, {out} filled in) on ``pid`` meanwhile;
    it is stopped with SIGINT (py-spy and perf then write their output)."""
    if out is None:
        yield
        return
    command = shlex.split(template.format(pid=pid, out=out))
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


@dataclass
class Figure:
    records: int = 0
    nbytes: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    def line(self, name: str) -> str:
        calls = max(1, len(self.latencies))
        q = statistics.quantiles(self.latencies, n=100) if calls > 1 else [0.0] * 99
        rate = f"{self.records / self.elapsed:7.0f} records/s" if self.records else " " * 17
        return (
            f"{name:7s} {calls / self.elapsed:5.0f} calls/s {rate} "
            f"{self.nbytes / self.elapsed / 1e6:6.1f} MB/s  p50 {q[49] * 1e3:5.2f} ms "
            f"p99 {q[98] * 1e3:6.2f} ms  cpu: server {self.server_cpu:4.0%} "
            f"{self.server_cpu * self.elapsed / calls * 1e6:5.0f} us/call, "
            f"client {self.client_cpu:4.0%}"
        )


async def measure(
    server_pid: int,
    in_flight: int,
    work: Callable[[int, Figure], Awaitable[None]],
    fig: Figure | None = None,
) -> Figure:
    """Run ``work(worker, fig)`` in ``in_flight`` workers; they append latencies and count
    records and bytes. Adds the elapsed time and the CPU share used by the server process and
    this one."""
    fig = fig or Figure()
    server0, client0, start = proc_cpu_s(server_pid), time.process_time(), time.monotonic()
    await asyncio.gather(*(work(w, fig) for w in range(in_flight)))
    fig.elapsed = time.monotonic() - start
    fig.server_cpu = (proc_cpu_s(server_pid) - server0) / fig.elapsed
    fig.client_cpu = (time.process_time() - client0) / fig.elapsed
    return fig


async def drive(
    call: Call,
    payloads: Sequence[bytes],
    in_flight: int,
    seconds: float,
    server_pid: int,
    limit: int = sys.maxsize,
    fig: Figure | None = None,
) -> Figure:
    """Send ``payloads`` round robin with ``in_flight`` calls outstanding, for ``seconds`` or
    ``limit`` calls, whichever comes first."""
    deadline = time.monotonic() + seconds
    issued = [0]

    async def work(w: int, fig: Figure) -> None:
        i = w
        while time.monotonic() < deadline and issued[0] < limit:
            issued[0] += 1
            payload = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            await call(payload)
            fig.latencies.append(time.perf_counter() - t0)
            fig.nbytes += len(payload)
            i += in_flight

    return await measure(server_pid, in_flight, work, fig)
