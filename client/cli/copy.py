"""``raftka copy``: copy a topic exactly once, within a cluster or to another one.

    raftka copy --from-bootstrap a:9092 --to-bootstrap b:9092 --source-topic orders \\
        --target-topic orders-copy --group orders-copier --transactional-id orders-copier-1

Designed like MirrorMaker 2's exactly-once mode: the copier reads every partition of the
source topic (assigned, read_committed, no group membership on the source), and each batch it
polls becomes one transaction on the TARGET cluster holding both the copied records and the
source positions, committed as offsets of ``--group`` at the target's group coordinator
(send_offsets_to_transaction). The copy and the progress marker therefore commit or abort
together, whichever cluster the source is. On start, and after every abort, the copier
rewinds to the positions the last commit recorded (read from the target at start), so no
record is lost or copied twice. An abortable error aborts and rewinds; a fatal one (another
copier with the same transactional id took over) stops the command.

The group offsets name SOURCE partitions, and a group coordinator accepts offsets only for
topics its own cluster has (Kafka's does the same), so across clusters the target needs a topic
named like the source topic with at least as many partitions: copying a topic to the same name
(the usual mirror) is enough. The command checks this first and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from raftka.client.cli.auth_options import add_security_arguments
from raftka.client.cli.bootstrap import (
    connection_security,
    parse_properties,
    resolve_bootstrap_servers,
)
from raftka.common.errors import RaftkaError
from raftka.common.txn_errors import TransactionAbortableError

if TYPE_CHECKING:
    from raftka.client.connections import BrokerConnections
    from raftka.client.consumer import AsyncConsumer, ConsumerRecord
    from raftka.client.producer import AsyncProducer
    from raftka.client.types import TopicPartition

TARGET_CHECK_S = 2.0
"""How long the check that the target cluster knows the source topic waits for its metadata."""

READ_TIMEOUT_S = 30.0
"""How long to keep asking for the group's committed offsets (while a commit is settling)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "copy",
        help="copy a topic exactly once (also to another cluster)",
        description="Copy the records of a source topic to a target topic, exactly once: each "
        "polled batch is written in one transaction together with the source positions, "
        "which are committed as offsets of --group on the TARGET cluster. Restarting with the "
        "same --group and --transactional-id continues where the last commit stopped. Stops "
        "after --max-records, or when nothing arrived for --idle-timeout-s.",
    )
    p.add_argument(
        "--from-bootstrap",
        metavar="HOST:PORT[,...]",
        help="the source cluster's brokers (default: as --bootstrap-server is found for "
        "other commands: RAFTKA_BOOTSTRAP_SERVER or the local cluster file)",
    )
    p.add_argument(
        "--to-bootstrap",
        metavar="HOST:PORT[,...]",
        help="the target cluster's brokers (default: the source cluster)",
    )
    p.add_argument("--source-topic", required=True, metavar="TOPIC")
    p.add_argument("--target-topic", required=True, metavar="TOPIC")
    p.add_argument(
        "--group",
        required=True,
        metavar="GROUP",
        help="the group, on the target cluster, whose committed offsets record how far the "
        "copy got (source partitions)",
    )
    p.add_argument(
        "--transactional-id",
        required=True,
        metavar="ID",
        help="stable per copier: a new copier with the same id fences the old one",
    )
    p.add_argument(
        "--start",
        choices=("earliest", "latest"),
        default="earliest",
        help="where to start in partitions the group has no offset for (default earliest)",
    )
    p.add_argument("--max-records", type=int, metavar="N", help="stop after copying N records")
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=10.0,
        metavar="S",
        help="stop when no record arrived for S seconds (default 10; 0: never)",
    )
    p.add_argument("--consumer-property", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--producer-property", action="append", default=[], metavar="NAME=VALUE")
    add_security_arguments(p)  # both clusters; a --*-property overrides it for one side
    p.set_defaults(run=_run)


@dataclass(frozen=True, slots=True)
class CopyGroup:
    """The group whose offsets the copier commits: a "simple" group (no member)."""

    group_id: str
    member_id: str = ""
    member_epoch: int = -1


@dataclass
class CopyStats:
    records: int = 0
    transactions: int = 0
    aborted: int = 0


class TargetOffsets:
    """The copier's committed source positions, read from the group coordinator of the
    TARGET cluster (where the transactions commit them), waiting while a commit settles."""

    def __init__(self, group_id: str, connections: BrokerConnections, brokers: list[str]) -> None:
        from raftka.client.consumer.group_offsets import GroupOffsetStore
        from raftka.client.group_coordinator import GroupCoordinator
        from raftka.common.rpc.retry import RetryPolicy

        coordinator = GroupCoordinator(
            group_id,
            connections,
            lambda: brokers,
            request_timeout_s=READ_TIMEOUT_S,
            retry=RetryPolicy(0.05, 1.0),
        )
        self._store = GroupOffsetStore(coordinator, lambda: ("", -1), require_stable=True)

    async def read(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        found = await self._store.fetch_committed(partitions)
        return {tp: o.offset for tp, o in found.items()}


class Copier:
    """The copy loop, on a consumer of the source and a transactional producer of the target."""

    def __init__(
        self,
        consumer: AsyncConsumer,
        producer: AsyncProducer,
        offsets: TargetOffsets,
        *,
        source_topic: str,
        target_topic: str,
        group: str,
        start: str = "earliest",
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._offsets = offsets
        self._source = source_topic
        self._target = target_topic
        self._group = CopyGroup(group)
        self._start = start
        self._committed: dict[TopicPartition, int] = {}
        self._same_partitions = False
        self.stats = CopyStats()

    async def run(self, *, max_records: int | None, idle_timeout_s: float | None) -> CopyStats:
        partitions = await self._consumer.partitions_for(self._source)
        target_count = len(await self._producer.partitions_for(self._target))
        self._same_partitions = target_count >= len(partitions)
        self._consumer.assign(partitions)
        self._committed = await self._offsets.read(partitions)
        self._rewind(partitions)
        await self._producer.init_transactions()
        last = time.monotonic()
        while max_records is None or self.stats.records < max_records:
            limit = self._consumer.config.max_poll_records
            if max_records is not None:
                limit = min(limit, max_records - self.stats.records)
            wait_s = 1.0
            if idle_timeout_s:
                wait_s = max(0.0, min(1.0, last + idle_timeout_s - time.monotonic()))
            records = await self._consumer.poll(timeout_ms=wait_s * 1000, max_records=limit)
            if records:
                await self._copy(records)
                last = time.monotonic()
            elif idle_timeout_s and time.monotonic() - last >= idle_timeout_s:
                break
        return self.stats

    async def _copy(self, records: list[ConsumerRecord]) -> None:
        positions = {r.topic_partition: r.offset + 1 for r in records}
        self._producer.begin_transaction()
        try:
            for r in records:
                await self._producer.send(
                    self._target,
                    r.value,
                    r.key,
                    partition=r.partition if self._same_partitions else None,
                    headers=tuple((k, v) for k, v in r.headers),
                    timestamp_ms=r.timestamp,
                )
            await self._producer.send_offsets_to_transaction(positions, self._group)
            await self._producer.commit_transaction()
        except TransactionAbortableError as e:
            await self._producer.abort_transaction()
            self.stats.aborted += 1
            print(f"raftka copy: transaction aborted, rewinding: {e.message}", file=sys.stderr)
            self._rewind(list(positions))
            return
        self._committed.update(positions)
        self.stats.records += len(records)
        self.stats.transactions += 1

    def _rewind(self, partitions: list[TopicPartition]) -> None:
        """Back to the last committed positions (or the start policy where there is none)."""
        fresh = []
        for tp in partitions:
            if tp in self._committed:
                self._consumer.seek(tp, self._committed[tp])
            else:
                fresh.append(tp)
        if fresh and self._start == "earliest":
            self._consumer.seek_to_beginning(*fresh)
        elif fresh:
            self._consumer.seek_to_end(*fresh)


def _run(args: argparse.Namespace) -> int:
    if args.max_records is not None and args.max_records < 0:
        raise RaftkaError(f"--max-records must be >= 0, not {args.max_records}")
    stats = asyncio.run(copy_topic(args))
    print(
        f"copied {stats.records} records in {stats.transactions} transactions "
        f"({stats.aborted} aborted)",
        file=sys.stderr,
    )
    return 0


async def copy_topic(args: argparse.Namespace) -> CopyStats:
    from raftka.client.connections import BrokerConnections
    from raftka.client.consumer import AsyncConsumer, ConsumerConfig
    from raftka.client.producer import AsyncProducer, ProducerConfig

    source = resolve_bootstrap_servers(args.from_bootstrap)
    target = _split(args.to_bootstrap) if args.to_bootstrap else source
    security = connection_security(args, [*source, *target])
    consumer_props: dict[str, object] = {
        "isolation.level": "read_committed",
        **security.properties(),
    }
    consumer_props.update(parse_properties(args.consumer_property, "--consumer-property"))
    consumer_props["bootstrap.servers"] = ",".join(source)
    consumer_props["isolation.level"] = "read_committed"
    producer_props: dict[str, object] = dict(security.properties())
    producer_props.update(parse_properties(args.producer_property, "--producer-property"))
    producer_props["bootstrap.servers"] = ",".join(target)
    producer_props["transactional.id"] = args.transactional_id
    connections = BrokerConnections(client_id="raftka-copy", security=security.channel())
    async with (
        AsyncConsumer(ConsumerConfig.from_properties(consumer_props)) as consumer,
        AsyncProducer(ProducerConfig.from_properties(producer_props)) as producer,
    ):
        try:
            if set(target) != set(source):
                await _check_target_has_source_topic(consumer, producer, args.source_topic)
            copier = Copier(
                consumer,
                producer,
                TargetOffsets(args.group, connections, target),
                source_topic=args.source_topic,
                target_topic=args.target_topic,
                group=args.group,
                start=args.start,
            )
            return await copier.run(
                max_records=args.max_records, idle_timeout_s=args.idle_timeout_s or None
            )
        finally:
            await connections.close()


async def _check_target_has_source_topic(
    consumer: AsyncConsumer, producer: AsyncProducer, topic: str
) -> None:
    """The target's group coordinator refuses offsets of a topic the target cluster lacks."""
    from raftka.common.errors import UnknownTopicOrPartitionError
    from raftka.common.rpc.retry import Deadline

    needed = len(await consumer.partitions_for(topic))
    try:
        info = await producer.metadata.topic(topic, Deadline(TARGET_CHECK_S))
        found = len(info.partitions)
    except UnknownTopicOrPartitionError:
        found = 0
    if found < needed:
        has = f"{found} partitions of {topic!r}" if found else f"no topic {topic!r}"
        raise RaftkaError(
            f"the target cluster has {has}: the copy's progress is committed there as group "
            f"offsets of the source topic, which need a topic of that name with at least "
            f"{needed} partitions on the target; copy to a topic of the same name "
            f"(--target-topic {topic}), or create `{topic}` with {needed} partitions on the "
            "target first"
        )


def _split(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]
