"""``raftka consume``: print a topic's records (like kafka-console-consumer).

    raftka consume orders --from-beginning --max-messages 10 --format json

Records go to stdout, one per line; the closing count goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
from typing import TYPE_CHECKING, BinaryIO

from raftka.client.cli.bootstrap import (
    add_bootstrap_server_argument,
    connection_security,
    parse_properties,
    resolve_bootstrap_servers,
)
from raftka.common.errors import RaftkaError

if TYPE_CHECKING:
    from raftka.client.consumer import AsyncConsumer, ConsumerRecord
    from raftka.client.types import TopicPartition

FORMATS = ("value", "kv", "json")
STARTUP_TIMEOUT_S = 10.0
"""How long to look for the brokers and the topic before giving up (at most request.timeout.ms)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "consume",
        help="print a topic's records",
        description="Read records from a topic's partitions and print them, one per line. "
        "Starts at the end (new records only) unless --from-beginning or --offset says "
        "otherwise; runs until Ctrl-C, --max-messages or --timeout-ms.",
    )
    p.add_argument("topic")
    add_bootstrap_server_argument(p)
    p.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="N",
        help="only this partition (repeatable; default: every partition)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    start.add_argument(
        "--offset", type=int, metavar="N", help="start at offset N of each chosen partition"
    )
    p.add_argument(
        "--group",
        metavar="GROUP",
        help="read as a member of this consumer group: the group shares the topic's partitions "
        "among its members and each starts from the group's committed offset (committed "
        "automatically, and on exit); --from-beginning then applies only where the group has "
        "none (not with --partition or --offset)",
    )
    p.add_argument("--max-messages", type=int, metavar="N", help="exit after N records")
    p.add_argument(
        "--timeout-ms",
        type=int,
        metavar="MS",
        help="exit when no record arrives for this long (default: wait forever)",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="value",
        help="value: the value; kv: key, separator, value; json: one object per line with "
        "topic, partition, offset, timestamp, key, value and headers (default value)",
    )
    p.add_argument(
        "--key-separator",
        default="\t",
        metavar="SEP",
        help="between key and value with --format kv (default: a tab)",
    )
    p.add_argument(
        "--consumer-property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a consumer setting by its Kafka name, e.g. fetch.max.wait.ms=100 (repeatable)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    for name in ("max_messages", "timeout_ms", "offset"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise RaftkaError(f"--{name.replace('_', '-')} must be >= 0, not {value}")
    if args.group is not None and (args.partition or args.offset is not None):
        raise RaftkaError(
            "--group reads the partitions the group assigns, from its committed offsets: "
            "leave out --partition and --offset (or leave out --group)"
        )
    counter = [0]
    code = 0
    try:
        asyncio.run(_consume(args, sys.stdout.buffer, counter))
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:  # `raftka consume ... | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    print(f"processed {counter[0]} messages", file=sys.stderr)
    return code


async def open_consumer(
    args: argparse.Namespace, *, reset: str, extra: dict[str, str] | None = None
) -> AsyncConsumer:
    """An AsyncConsumer for a command's --bootstrap-server and --consumer-property options."""
    from raftka.client.consumer import AsyncConsumer, ConsumerConfig

    servers = resolve_bootstrap_servers(args.bootstrap_server)
    properties = {
        "auto.offset.reset": reset,
        **connection_security(args, servers).properties(),
        **(extra or {}),
    }
    properties.update(parse_properties(args.consumer_property, "--consumer-property"))
    properties["bootstrap.servers"] = ",".join(servers)
    return AsyncConsumer(ConsumerConfig.from_properties(properties))


async def chosen_partitions(
    consumer: AsyncConsumer, topic: str, wanted: list[int] | None
) -> list[TopicPartition]:
    """The topic's partitions (all, or those named), with a clear error for unknown ones."""
    timeout_ms = min(STARTUP_TIMEOUT_S * 1000, consumer.config.request_timeout_ms)
    partitions = await consumer.partitions_for(topic, timeout_ms=timeout_ms)
    if not wanted:
        return partitions
    unknown = sorted(set(wanted) - {tp.partition for tp in partitions})
    if unknown:
        raise RaftkaError(
            f"topic {topic!r} has partitions 0..{len(partitions) - 1}; there is no partition "
            f"{', '.join(map(str, unknown))}"
        )
    return [tp for tp in partitions if tp.partition in set(wanted)]


async def _consume(args: argparse.Namespace, out: BinaryIO, counter: list[int]) -> None:
    """Print records until done; ``counter[0]`` counts them (also when interrupted)."""
    group = {"group.id": args.group} if getattr(args, "group", None) else None
    consumer = await open_consumer(
        args, reset="earliest" if args.from_beginning else "latest", extra=group
    )
    count = 0
    async with consumer:
        if group is not None:  # positions come from the group's committed offsets
            await chosen_partitions(consumer, args.topic, None)  # a clear error if it is missing
            consumer.subscribe([args.topic])
        else:
            partitions = await chosen_partitions(consumer, args.topic, args.partition)
            consumer.assign(partitions)
            if args.from_beginning:
                consumer.seek_to_beginning()
            elif args.offset is not None:
                for tp in partitions:
                    consumer.seek(tp, args.offset)
            else:
                consumer.seek_to_end()
        idle_s = None if args.timeout_ms is None else args.timeout_ms / 1000
        last = time.monotonic()
        while args.max_messages is None or count < args.max_messages:
            wait_s = 1.0 if idle_s is None else max(0.0, min(1.0, last + idle_s - time.monotonic()))
            limit = consumer.config.max_poll_records
            if args.max_messages is not None:
                limit = min(limit, args.max_messages - count)
            records = await consumer.poll(timeout_ms=wait_s * 1000, max_records=limit)
            if records:
                out.write(
                    b"".join(format_record(r, args.format, args.key_separator) for r in records)
                )
                out.flush()
                count += len(records)
                counter[0] = count
                last = time.monotonic()
            elif idle_s is not None and time.monotonic() - last >= idle_s:
                break


def format_record(record: ConsumerRecord, fmt: str, key_separator: str = "\t") -> bytes:
    """One output line (newline included)."""
    if fmt == "json":
        line = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": _json_bytes(record.key),
            "value": _json_bytes(record.value),
            "headers": [{"key": k, "value": _json_bytes(v)} for k, v in record.headers],
        }
        return json.dumps(line, ensure_ascii=False).encode() + b"\n"
    value = b"null" if record.value is None else record.value
    if fmt == "kv":
        key = b"null" if record.key is None else record.key
        return key + key_separator.encode() + value + b"\n"
    return value + b"\n"


def _json_bytes(data: bytes | None) -> str | dict[str, str] | None:
    """UTF-8 text as a string; other bytes as {"base64": ...}; null as null."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
