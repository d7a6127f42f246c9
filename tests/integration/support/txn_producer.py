"""A transactional producer as its own OS process, driven by a test: so a test can SIGSTOP it
mid-transaction (a zombie) or kill -9 it, which an in-process producer cannot show.

The process (``python -m tests.integration.support.txn_producer --bootstrap-server ...
--transactional-id T --report r.jsonl``) reads one JSON command a line from stdin::

    {"op": "init"} {"op": "begin"} {"op": "commit"} {"op": "abort"} {"op": "exit"}
    {"op": "send", "topic": "t", "partition": 0, "values": ["a", "b"]}   # waits for the acks

and appends one JSON line per command to the report file: ``{"seq", "op", "ok"}`` plus, on
failure, ``error`` (the exception's class), ``fenced`` and ``message``. The first line,
``{"seq": 0, "op": "ready"}``, says it started. :class:`TxnProducerProcess` is the test's side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from tests.conditions import wait_until

ROOT = Path(__file__).resolve().parents[3]


class TxnProducerProcess:
    """Starts one producer process and sends it commands; each call waits for its report."""

    def __init__(
        self,
        out_dir: Path,
        name: str,
        bootstrap_servers: list[str],
        transactional_id: str,
        *,
        transaction_timeout_ms: int = 60_000,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.report_path = out_dir / f"{name}.jsonl"
        self.report_path.unlink(missing_ok=True)
        with (out_dir / f"{name}.log").open("ab") as stderr:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.integration.support.txn_producer",
                    "--bootstrap-server",
                    ",".join(bootstrap_servers),
                    "--transactional-id",
                    transactional_id,
                    "--transaction-timeout-ms",
                    str(transaction_timeout_ms),
                    "--report",
                    str(self.report_path),
                ],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        self._seq = 0
        self._wait_for(0, timeout_s=20.0)

    def reports(self) -> list[dict[str, Any]]:
        if not self.report_path.exists():
            return []
        lines = self.report_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def _wait_for(self, seq: int, timeout_s: float) -> dict[str, Any]:
        def reported() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"producer process exited ({self.process.returncode})")
            return any(r["seq"] == seq for r in self.reports())

        wait_until(reported, f"report {seq} of {self.report_path.name}", timeout_s=timeout_s)
        return next(r for r in self.reports() if r["seq"] == seq)

    def call(self, op: str, *, timeout_s: float = 30.0, **args: object) -> dict[str, Any]:
        """Run one command; return its report (``ok`` False: the producer raised)."""
        self._seq += 1
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **args}).encode() + b"\n")
        self.process.stdin.flush()
        return self._wait_for(self._seq, timeout_s)

    def ok(self, op: str, **args: Any) -> None:
        report = self.call(op, **args)
        assert report["ok"], report

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: the producer vanishes mid-whatever, closing nothing."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(self.process.pid, signal.SIGCONT)
                self.process.kill()
            self.process.wait()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


@contextlib.contextmanager
def txn_producer_process(
    out_dir: Path, name: str, bootstrap_servers: list[str], transactional_id: str, **kw: Any
) -> Iterator[TxnProducerProcess]:
    process = TxnProducerProcess(out_dir, name, bootstrap_servers, transactional_id, **kw)
    try:
        yield process
    finally:
        process.stop()


# --------------------------------------------------------------------- the process itself


async def _serve(args: argparse.Namespace, report: TextIO) -> None:
    from raftka.client.producer import AsyncProducer
    from raftka.common.txn_errors import ProducerFencedError

    def write(entry: dict[str, object]) -> None:
        report.write(json.dumps(entry) + "\n")

    producer = AsyncProducer(
        bootstrap_servers=args.bootstrap_server.split(","),
        transactional_id=args.transactional_id,
        transaction_timeout_ms=args.transaction_timeout_ms,
        linger_ms=0,
        retry_backoff_ms=20,
        request_timeout_ms=5_000,
        delivery_timeout_ms=15_000,
        max_block_ms=15_000,
    )
    loop = asyncio.get_running_loop()
    write({"seq": 0, "op": "ready", "ok": True})
    seq = 0
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command = json.loads(line)
            seq += 1
            op = command["op"]
            if op == "exit":
                write({"seq": seq, "op": op, "ok": True})
                return
            try:
                await _run(producer, command)
            except Exception as e:
                fenced = isinstance(e, ProducerFencedError) or isinstance(
                    e.__cause__, ProducerFencedError
                )
                message = str(getattr(e, "message", e))
                entry = {"error": type(e).__name__, "fenced": fenced, "message": message}
                write({"seq": seq, "op": op, "ok": False, **entry})
            else:
                write({"seq": seq, "op": op, "ok": True})
    finally:
        with contextlib.suppress(Exception):
            await producer.close(timeout_s=2)


async def _run(producer: Any, command: dict[str, Any]) -> None:
    op = command["op"]
    if op == "init":
        await producer.init_transactions()
    elif op == "begin":
        producer.begin_transaction()
    elif op == "send":
        futures = [
            await producer.send(command["topic"], v.encode(), partition=command["partition"])
            for v in command["values"]
        ]
        for future in futures:
            await future
    elif op == "commit":
        await producer.commit_transaction()
    elif op == "abort":
        await producer.abort_transaction()
    else:
        raise ValueError(f"unknown command {op!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--transactional-id", required=True)
    parser.add_argument("--transaction-timeout-ms", type=int, default=60_000)
    parser.add_argument("--report", required=True)
    args = parser.parse_args()
    with Path(args.report).open("a", buffering=1) as report:
        asyncio.run(_serve(args, report))


if __name__ == "__main__":
    main()
