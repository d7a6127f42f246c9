"""``raftka perf``: throughput and latency tests against a running cluster (like Kafka's
kafka-consumer-perf-test / kafka-producer-perf-test).

    raftka perf produce --topic T --num-records N --record-size B [--throughput R]
                                                   send N records, report records/s, MB/s and
                                                   send-to-acknowledgement latency percentiles
    raftka perf consume --topic T --messages N     read N records, report records/s, MB/s and
                                                   fetch latency percentiles

Live progress goes to stderr once a second, the summary to stdout. The reporting helpers
(progress lines, percentiles, summary) are in ``perf_report.py``, shared by every action.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from raftka.client.cli.bootstrap import add_bootstrap_server_argument
from raftka.common.errors import RaftkaError


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    perf = sub.add_parser(
        "perf",
        help="throughput and latency tests (produce, consume)",
        description="Measure a running cluster: progress every second on stderr, the summary "
        "on stdout.",
    )
    actions = perf.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_produce(actions)
    _add_consume(actions)


# ---------------------------------------------------------------------------- produce


def _add_produce(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from raftka.client.cli.produce import add_producer_arguments

    p = actions.add_parser(
        "produce",
        help="send N records of a given size, optionally at a capped rate",
        description="Send --num-records records of --record-size random bytes to --topic "
        "(null keys: sticky partitioning over every partition) and report records/s, MB/s and "
        "the latency from send() to acknowledgement (p50, p99, max).",
    )
    p.add_argument("--topic", required=True)
    p.add_argument("--num-records", type=int, required=True, metavar="N")
    p.add_argument("--record-size", type=int, default=1024, metavar="BYTES")
    p.add_argument(
        "--throughput",
        type=int,
        default=-1,
        metavar="RECORDS_PER_S",
        help="cap the send rate (default -1: as fast as possible)",
    )
    p.add_argument(
        "--reporting-interval-ms", type=int, default=1000, metavar="MS", help="progress interval"
    )
    add_producer_arguments(p)
    p.set_defaults(run=_run_produce)


def _run_produce(args: argparse.Namespace) -> int:
    if args.num_records < 1 or args.record_size < 0:
        raise RaftkaError("--num-records must be at least 1 and --record-size at least 0")
    if args.throughput == 0 or args.reporting_interval_ms < 1:
        raise RaftkaError("--throughput must be positive (or -1) and --reporting-interval-ms >= 1")
    return asyncio.run(_produce(args))


async def _produce(args: argparse.Namespace) -> int:
    import os

    from raftka.client.cli.perf_report import PerfProgress
    from raftka.client.cli.produce import open_producer

    payload = os.urandom(args.record_size)
    latencies: list[float] = []
    failures: list[BaseException] = []
    progress = PerfProgress("produce", interval_s=args.reporting_interval_ms / 1000)
    size = len(payload)

    def acknowledged(sent_at: float) -> Callable[[asyncio.Future[Any]], None]:
        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled() or future.exception() is not None:
                failures.append(future.exception() or asyncio.CancelledError())
                return
            latencies.append(time.monotonic() - sent_at)
            progress.add(1, size)

        return done

    async with open_producer(args) as producer:
        await producer.partitions_for(args.topic)  # fail fast on a missing topic
        start = time.monotonic()
        for i in range(args.num_records):
            if args.throughput > 0:
                ahead = start + i / args.throughput - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)  # pacing to the requested rate
            future = await producer.send(args.topic, payload)
            future.add_done_callback(acknowledged(time.monotonic()))
            progress.maybe_report()
            if failures:
                break
        await producer.flush()
        progress.maybe_report()
    print(progress.summary(latencies, "latency"))
    if failures:
        raise RaftkaError(f"{len(failures)} records failed; first: {failures[0]}")
    return 0


# ---------------------------------------------------------------------------- consume


def _add_consume(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = actions.add_parser(
        "consume",
        help="read N records from the start of a topic as fast as possible",
        description="Read --messages records from the beginning of every partition of --topic "
        "and report records/s, MB/s (keys and values) and the latency of fetches that "
        "returned data (p50, p99).",
    )
    p.add_argument("--topic", required=True)
    p.add_argument("--messages", type=int, required=True, metavar="N", help="records to read")
    add_bootstrap_server_argument(p)
    p.add_argument(
        "--timeout-ms",
        type=int,
        default=10_000,
        metavar="MS",
        help="give up when no record arrives for this long (default 10000)",
    )
    p.add_argument(
        "--reporting-interval-ms",
        type=int,
        default=1000,
        metavar="MS",
        help="progress line interval (default 1000)",
    )
    p.add_argument(
        "--consumer-property",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a consumer setting by its Kafka name, e.g. max.partition.fetch.bytes=4194304",
    )
    p.set_defaults(run=_run_consume)


def _run_consume(args: argparse.Namespace) -> int:
    if args.messages < 1:
        raise RaftkaError(f"--messages must be at least 1, not {args.messages}")
    if args.timeout_ms < 1 or args.reporting_interval_ms < 1:
        raise RaftkaError("--timeout-ms and --reporting-interval-ms must be at least 1")
    return asyncio.run(_consume(args))


async def _consume(args: argparse.Namespace) -> int:
    from raftka.client.cli.consume import chosen_partitions, open_consumer
    from raftka.client.cli.perf_report import PerfProgress

    latencies: list[float] = []

    def on_fetch(seconds: float, nbytes: int) -> None:
        if nbytes:  # long polls that found nothing measure the wait, not the fetch
            latencies.append(seconds)

    consumer = await open_consumer(args, reset="earliest")
    async with consumer:
        consumer.assign(await chosen_partitions(consumer, args.topic, None))
        consumer.seek_to_beginning()
        consumer.add_fetch_listener(on_fetch)
        progress = PerfProgress("consume", interval_s=args.reporting_interval_ms / 1000)
        idle_s = args.timeout_ms / 1000
        last = time.monotonic()
        while progress.records < args.messages:
            wait_s = max(0.0, min(progress_interval(args), last + idle_s - time.monotonic()))
            limit = min(args.messages - progress.records, consumer.config.max_poll_records)
            records = await consumer.poll(timeout_ms=wait_s * 1000, max_records=limit)
            if records:
                progress.add(
                    len(records),
                    sum(len(r.value or b"") + len(r.key or b"") for r in records),
                )
                last = time.monotonic()
            elif time.monotonic() - last >= idle_s:
                print(progress.summary(latencies, "fetch latency"))
                raise RaftkaError(
                    f"only {progress.records} of {args.messages} records arrived (none for "
                    f"{args.timeout_ms} ms): produce more to {args.topic!r} or ask for fewer "
                    "with --messages"
                )
            progress.maybe_report()
    print(progress.summary(latencies, "fetch latency"))
    return 0


def progress_interval(args: argparse.Namespace) -> float:
    return float(args.reporting_interval_ms) / 1000
