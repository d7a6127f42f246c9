"""``raftka perf``: throughput and latency tests against a running cluster (like Kafka's
kafka-consumer-perf-test / kafka-producer-perf-test).

    raftka perf consume --topic T --messages N     read N records, report records/s, MB/s and
                                                   fetch latency percentiles

Live progress goes to stderr once a second, the summary to stdout. The reporting helpers
(progress lines, percentiles, summary) are in ``perf_report.py``, shared by every action.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from raftka.client.bootstrap_servers import add_bootstrap_server_argument
from raftka.common.errors import RaftkaError


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    perf = sub.add_parser(
        "perf",
        help="throughput and latency tests (consume; produce comes with the producer)",
        description="Measure a running cluster: progress every second on stderr, the summary "
        "on stdout.",
    )
    actions = perf.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_consume(actions)
    # `raftka perf produce` is added here (an _add_produce(actions) next to _add_consume),
    # reporting through perf_report.Progress like consume does.


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
    from raftka.client.consume_commands import chosen_partitions, open_consumer
    from raftka.client.perf_report import Progress

    latencies: list[float] = []

    def on_fetch(seconds: float, nbytes: int) -> None:
        if nbytes:  # long polls that found nothing measure the wait, not the fetch
            latencies.append(seconds)

    consumer = await open_consumer(args, reset="earliest")
    async with consumer:
        consumer.assign(await chosen_partitions(consumer, args.topic, None))
        consumer.seek_to_beginning()
        consumer.add_fetch_listener(on_fetch)
        progress = Progress("consume", interval_s=args.reporting_interval_ms / 1000)
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
