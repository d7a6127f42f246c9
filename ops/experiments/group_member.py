"""One member of a consumer group, as its own OS process, recording what it does.

The group workload (``group_workload``) and the real-process tests start several of these and
kill, pause and restart them; each writes its events (``group_history``) to its own file::

    python -m raftka.ops.experiments.group_member --bootstrap-server 127.0.0.1:9092 \\
        --topic t --group g --member c1#0 --events c1.jsonl [--session-timeout-ms 6000]

It subscribes with auto-commit on (the default interval unless ``--auto-commit-interval-ms``),
polls in a loop and records every batch poll returns, every assignment (with the position each
partition starts from) and every revocation, and every commit the coordinator acknowledged.
SIGTERM (or SIGINT) closes the consumer the normal way: commit, then leave the group.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from raftka.client.consumer import AsyncConsumer, ConsumerConfig, OffsetAndMetadata
from raftka.client.types import TopicPartition
from raftka.ops.experiments.group_history import GroupEvent, GroupEventKind, GroupEventLog


class RecordingMember:
    """Runs a group consumer and writes what it does to ``events``."""

    def __init__(self, consumer: AsyncConsumer, member: str, events: GroupEventLog) -> None:
        self._consumer = consumer
        self._member = member
        self._events = events
        self._stop = asyncio.Event()

    def _epoch(self) -> int:
        return self._consumer.group_metadata().member_epoch

    def _write(
        self,
        kind: GroupEventKind,
        partitions: Sequence[TopicPartition] = (),
        positions: Mapping[TopicPartition, int] | None = None,
        records: tuple[tuple[int, str], ...] = (),
    ) -> None:
        self._events.write(
            GroupEvent(
                kind,
                self._member,
                self._epoch(),
                time.monotonic(),
                tuple(partitions),
                dict(positions or {}),
                records,
            )
        )

    async def on_assign(self, partitions: set[TopicPartition]) -> None:
        ordered = sorted(partitions)
        positions = {tp: await self._consumer.position(tp) for tp in ordered}
        self._write(GroupEventKind.ASSIGNED, ordered, positions)

    async def on_revoke(self, partitions: set[TopicPartition]) -> None:
        self._write(GroupEventKind.REVOKED, sorted(partitions))

    def on_commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self._write(GroupEventKind.COMMITTED, positions={tp: o.offset for tp, o in offsets.items()})

    def stop(self) -> None:
        self._stop.set()

    async def run(self, topic: str) -> None:
        consumer = self._consumer
        consumer.subscribe([topic], on_assign=self.on_assign, on_revoke=self.on_revoke)
        while not self._stop.is_set():
            records = await consumer.poll(timeout_ms=200)
            # Written before any await: the epoch is the one these records were owned under.
            by_partition: dict[TopicPartition, list[tuple[int, str]]] = {}
            for r in records:
                value = "" if r.value is None else r.value.decode("utf-8", "replace")
                by_partition.setdefault(r.topic_partition, []).append((r.offset, value))
            for tp, pairs in by_partition.items():
                self._write(GroupEventKind.CONSUMED, [tp], records=tuple(pairs))
        await consumer.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m raftka.ops.experiments.group_member",
        description="Run one recording member of a consumer group (for experiments and tests).",
    )
    p.add_argument("--bootstrap-server", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--member", required=True, help="this incarnation's label, e.g. c1#0")
    p.add_argument("--events", type=Path, required=True, help="the JSON-lines file to append to")
    p.add_argument("--session-timeout-ms", type=int, default=None)
    p.add_argument("--auto-commit-interval-ms", type=int, default=None)
    p.add_argument(
        "--consumer-property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a consumer setting by its Kafka name (repeatable), e.g. security.protocol=SSL",
    )
    p.add_argument("--instance-id", default=None, help="a static member's group.instance.id")
    p.add_argument(
        "--group-protocol",
        choices=("stream", "unary"),
        default="stream",
        help="heartbeats on a stream (pushed assignments) or unary calls",
    )
    return p


def with_properties(config: ConsumerConfig, items: Sequence[str]) -> ConsumerConfig:
    """``config`` with the ``NAME=VALUE`` settings (Kafka names) applied, each checked and
    converted as a client config file's would be."""
    given: dict[str, object] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise SystemExit(f"--consumer-property wants NAME=VALUE, got {item!r}")
        given[name.strip()] = value
    parsed = ConsumerConfig.from_properties(
        {"bootstrap.servers": config.bootstrap_servers, **given}
    )
    fields = {name.replace(".", "_") for name in given}
    return dataclasses.replace(config, **{f: getattr(parsed, f) for f in fields})


async def _main(args: argparse.Namespace) -> None:
    config = ConsumerConfig(
        bootstrap_servers=args.bootstrap_server,
        group_id=args.group,
        auto_offset_reset="earliest",
        client_id=f"member-{args.member}",
        group_instance_id=args.instance_id,
        group_heartbeat_mode=args.group_protocol,
    )
    if args.session_timeout_ms is not None:
        config = dataclasses.replace(config, session_timeout_ms=args.session_timeout_ms)
    if args.auto_commit_interval_ms is not None:
        config = dataclasses.replace(config, auto_commit_interval_ms=args.auto_commit_interval_ms)
    if args.consumer_property:
        config = with_properties(config, args.consumer_property)
    events = GroupEventLog(args.events)
    consumer = AsyncConsumer(config)
    member = RecordingMember(consumer, args.member, events)
    consumer.add_commit_listener(member.on_commit)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, member.stop)
    try:
        await member.run(args.topic)
    finally:
        events.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
