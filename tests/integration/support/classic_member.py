"""A confluent-kafka consumer group member of the classic protocol (the default
group.protocol) as its own OS process, so a test can kill -9 it.

``python -m tests.integration.support.classic_member --bootstrap-server B --group G
--topic T --report r.jsonl [--commit] [--assignor cooperative-sticky] [--kip848]`` subscribes and appends
one JSON line per event to the report file:

    {"ev": "ready"}
    {"ev": "assignment", "partitions": [0, 3]}            after every rebalance callback
    {"ev": "records", "items": [[partition, offset, key], ...]}   after each poll with records
    {"ev": "committed", "partitions": {"0": 12}}           after a synchronous commit

It runs until killed or until stdin closes (then it closes the consumer: LeaveGroup).
:class:`MemberProcess` is the test's side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


class MemberProcess:
    def __init__(
        self,
        out_dir: Path,
        name: str,
        bootstrap: str,
        group: str,
        topic: str,
        *,
        commit: bool,
        assignor: str | None = None,
        kip848: bool = False,
    ) -> None:
        self.name = name
        self.report = out_dir / f"{name}.jsonl"
        self.report.write_text("")
        args = [
            sys.executable,
            "-m",
            "tests.integration.support.classic_member",
            "--bootstrap-server",
            bootstrap,
            "--group",
            group,
            "--topic",
            topic,
            "--report",
            str(self.report),
        ]
        if commit:
            args.append("--commit")
        if assignor is not None:
            args += ["--assignor", assignor]
        if kip848:
            args.append("--kip848")
        self._stderr = open(out_dir / f"{name}.stderr", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stderr=self._stderr, stdout=subprocess.DEVNULL
        )

    def events(self) -> list[dict[str, Any]]:
        lines = self.report.read_text().splitlines()
        out = []
        for line in lines:
            with contextlib.suppress(json.JSONDecodeError):  # a line being written
                out.append(json.loads(line))
        return out

    def assignment(self) -> set[int] | None:
        """The partitions it owns now (None before its first assignment, or once killed)."""
        if self.process.poll() is not None:
            return None
        latest = [e for e in self.events() if e["ev"] == "assignment"]
        return set(latest[-1]["partitions"]) if latest else None

    def consumed(self) -> list[tuple[int, int, str]]:
        return [(p, o, k) for e in self.events() if e["ev"] == "records" for p, o, k in e["items"]]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._stderr.close()


def _main() -> None:
    from confluent_kafka import Consumer, KafkaException

    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--commit", action="store_true")
    parser.add_argument("--assignor", help="partition.assignment.strategy (default: the client's)")
    parser.add_argument("--kip848", action="store_true", help="group.protocol=consumer instead")
    args = parser.parse_args()
    report = open(args.report, "a", buffering=1)  # noqa: SIM115 - the process's lifetime

    def emit(**event: Any) -> None:
        report.write(json.dumps(event) + "\n")

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap_server,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **(
                {"group.protocol": "consumer"}
                if args.kip848
                else {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
            ),
            "topic.metadata.refresh.interval.ms": 1000,
            **({"partition.assignment.strategy": args.assignor} if args.assignor else {}),
            **({"debug": debug} if (debug := os.environ.get("KAFKA_MEMBER_DEBUG")) else {}),
        }
    )

    # Eager assignors (the default) revoke everything and then assign the whole new set;
    # cooperative ones revoke and assign increments: following both keeps what is owned.
    current: set[int] = set()

    def owned(_c: Any, partitions: Any) -> None:
        current.update(tp.partition for tp in partitions)
        emit(ev="assignment", partitions=sorted(current))

    def revoked(_c: Any, partitions: Any) -> None:
        current.difference_update(tp.partition for tp in partitions)
        emit(ev="assignment", partitions=sorted(current))

    consumer.subscribe([args.topic], on_assign=owned, on_revoke=revoked, on_lost=revoked)
    emit(ev="ready")
    stop = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while not stop.is_set():
        messages = consumer.consume(100, 0.2)
        items = [
            [m.partition(), m.offset(), (m.key() or b"").decode()]
            for m in messages
            if m.error() is None
        ]
        if items:
            emit(ev="records", items=items)
            if args.commit:
                try:
                    done = consumer.commit(asynchronous=False)
                    emit(ev="committed", partitions={str(tp.partition): tp.offset for tp in done})
                except KafkaException as e:
                    emit(ev="commit_failed", error=str(e))
    consumer.close()
    emit(ev="closed")
    os._exit(0)


if __name__ == "__main__":
    _main()
