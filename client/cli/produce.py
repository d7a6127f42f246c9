"""``raftka produce``: send lines from stdin as records (like kafka-console-producer).

    printf 'alice:hello\nbob:hi\n' | raftka produce orders --key-separator :

Each line is a record's value, or ``key<sep>value`` with --key-separator. Records go through
the Python producer (idempotent, acks=all by default); the count goes to stderr at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING, Any, BinaryIO

from raftka.client.cli.bootstrap import (
    add_bootstrap_server_argument,
    connection_security,
    parse_properties,
    resolve_bootstrap_servers,
)
from raftka.common.errors import RaftkaError

if TYPE_CHECKING:
    from raftka.client.producer import AsyncProducer


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "produce",
        help="send lines from stdin to a topic",
        description="Read lines from stdin and send each as a record (the line is the value, or "
        "key<SEP>value with --key-separator). Keyed records go to the key's partition (Kafka's "
        "murmur2), others are spread (sticky partitioning) unless --partition is given.",
    )
    p.add_argument("topic")
    add_producer_arguments(p)
    p.add_argument("--key-separator", metavar="SEP", help="split each line into key and value")
    p.add_argument("--partition", type=int, help="send every record to this partition")
    p.set_defaults(run=_run)


def add_producer_arguments(p: argparse.ArgumentParser) -> None:
    """The options every command that produces shares (produce, perf produce)."""
    add_bootstrap_server_argument(p)
    p.add_argument("--acks", choices=("all", "-1", "1", "0"), default="all")
    p.add_argument("--compression-type", choices=("none", "gzip", "lz4", "zstd"), default="none")
    p.add_argument(
        "--producer-property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a producer setting by its Kafka name, e.g. linger.ms=20",
    )


def open_producer(args: argparse.Namespace, **extra: Any) -> AsyncProducer:
    from raftka.client.producer import AsyncProducer, ProducerConfig

    servers = resolve_bootstrap_servers(args.bootstrap_server)
    properties: dict[str, object] = {
        "acks": args.acks,
        "compression.type": args.compression_type,
        **connection_security(args, servers).properties(),
        **extra,
    }
    properties.update(parse_properties(args.producer_property, "--producer-property"))
    properties["bootstrap.servers"] = ",".join(servers)
    return AsyncProducer(ProducerConfig.from_properties(properties))


def _run(args: argparse.Namespace) -> int:
    return asyncio.run(produce_lines(args, sys.stdin.buffer))


async def produce_lines(args: argparse.Namespace, stream: BinaryIO) -> int:
    separator = args.key_separator.encode() if args.key_separator else None
    failures: list[str] = []
    sent = 0
    async with open_producer(args) as producer:
        futures = []
        for raw in stream:
            line = raw.rstrip(b"\r\n")
            key: bytes | None = None
            if separator is not None:
                key, found, value = line.partition(separator)
                if not found:
                    raise RaftkaError(
                        f"line {sent + 1} has no key separator {args.key_separator!r}: {line[:60]!r}"
                    )
            else:
                value = line
            futures.append(
                await producer.send(args.topic, value, key=key, partition=args.partition)
            )
            sent += 1
        for f in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(f, BaseException):
                failures.append(str(f))
    if failures:
        print(f"{len(failures)} of {sent} records failed; first: {failures[0]}", file=sys.stderr)
        return 1
    print(f"produced {sent} records to {args.topic}", file=sys.stderr)
    return 0
