"""``raftka copy``: the exactly-once copy loop between two fake clusters (source offsets
committed on the target, inside each transaction), restarts, aborts and rewinds."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from raftka.client.cli.app import build_parser
from raftka.client.cli.copy import Copier, CopyStats, TargetOffsets
from raftka.client.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.client.fake_txn import FakeTxnCluster
from tests.unit.client.support import make_consumer, poll_n

IN0, IN1 = TopicPartition("in", 0), TopicPartition("in", 1)


def clusters() -> tuple[FakeTxnCluster, FakeTxnCluster]:
    source, target = FakeTxnCluster(), FakeTxnCluster()
    source.create("in", 2)
    target.create("out", 2)
    return source, target


async def copy(source: FakeTxnCluster, target: FakeTxnCluster, **run: Any) -> CopyStats:
    consumer = make_consumer(source, isolation_level="read_committed", max_poll_records=4)
    producer = AsyncProducer(
        bootstrap_servers=target.bootstrap,
        connections=target,
        transactional_id="copier",
        linger_ms=0,
        retry_backoff_ms=1,
    )
    try:
        copier = Copier(
            consumer,
            producer,
            TargetOffsets("g", target, target.bootstrap),
            source_topic="in",
            target_topic="out",
            group="g",
        )
        return await copier.run(**{"max_records": None, "idle_timeout_s": 0.3, **run})
    finally:
        await producer.close(timeout_s=5)
        await consumer.close()


async def committed_values(target: FakeTxnCluster, partition: int, n: int) -> list[bytes]:
    reader = make_consumer(target, isolation_level="read_committed")
    tp = TopicPartition("out", partition)
    reader.assign([tp])
    reader.seek(tp, 0)
    try:
        values = [r.value or b"" for r in await poll_n(reader, n)]
        assert await reader.poll(timeout_ms=100) == [], "more records than expected"
        return values
    finally:
        await reader.close()


def test_the_copy_commits_records_and_source_offsets_on_the_target_and_resumes_there() -> None:
    source, target = clusters()
    source.append("in", 0, [b"a0", b"a1", b"a2"])
    source.append("in", 0, [b"a3", b"a4"])
    source.append("in", 1, [b"b0", b"b1"])

    async def main() -> None:
        stats = await copy(source, target)
        assert stats.records == 7 and stats.aborted == 0
        assert stats.transactions >= 2, "max_poll_records=4: more than one transaction"
        assert target.committed_offsets == {("g", IN0): 5, ("g", IN1): 2}
        assert source.committed_offsets == {}, "nothing is committed on the source"
        source.append("in", 1, [b"b2"])
        again = await copy(source, target)
        assert again.records == 1, "a restart continues from the target's offsets"
        assert target.committed_offsets[("g", IN1)] == 3
        assert await committed_values(target, 0, 5) == [b"a0", b"a1", b"a2", b"a3", b"a4"]
        assert await committed_values(target, 1, 3) == [b"b0", b"b1", b"b2"]

    asyncio.run(main())
    commits = [d for k, d in target.events if k == "txn_offset_commit"]
    assert all((c.group_id, c.member_id, c.member_epoch) == ("g", "", -1) for c in commits)


def test_an_abortable_failure_aborts_rewinds_and_copies_each_record_once() -> None:
    source, target = clusters()
    source.append("in", 0, [b"x0", b"x1", b"x2"])
    target.produce_codes[TopicPartition("out", 0)] = [ErrorCode.INVALID_RECORD]

    async def main() -> None:
        stats = await copy(source, target)
        assert (stats.records, stats.aborted) == (3, 1)
        assert await committed_values(target, 0, 3) == [b"x0", b"x1", b"x2"]
        assert target.committed_offsets[("g", IN0)] == 3

    asyncio.run(main())
    assert [d[0] for k, d in target.events if k == "end"] == [False, True]


def test_start_positions_wait_for_a_transactional_commit_to_settle() -> None:
    _source, target = clusters()
    target.committed_offsets[("g", IN1)] = 9
    target.unstable_fetches = 2

    async def main() -> None:
        found = await TargetOffsets("g", target, target.bootstrap).read([IN0, IN1])
        assert found == {IN1: 9}

    asyncio.run(main())
    fetches = [d for k, d in target.events if k == "offset_fetch"]
    assert len(fetches) == 3 and all(f.require_stable for f in fetches)


@pytest.mark.parametrize("seed", range(3))
def test_random_failures_never_lose_nor_duplicate_a_record(seed: int) -> None:
    rng = random.Random(seed)
    source, target = clusters()
    expected: dict[int, list[bytes]] = {0: [], 1: []}
    for n in range(12):
        p = rng.randrange(2)
        values = [b"%d-%d" % (n, i) for i in range(rng.randint(1, 3))]
        source.append("in", p, values)
        expected[p] += values
    for p in range(2):
        target.produce_codes[TopicPartition("out", p)] = [
            rng.choice([ErrorCode.NONE] * 3 + [ErrorCode.INVALID_RECORD]) for _ in range(20)
        ]

    async def main() -> None:
        stats = await copy(source, target)
        assert stats.records == sum(len(v) for v in expected.values())
        assert stats.aborted > 0, "some transactions failed and were redone"
        for p in range(2):
            assert await committed_values(target, p, len(expected[p])) == expected[p]

    asyncio.run(main())


def test_max_records_stops_the_copy() -> None:
    source, target = clusters()
    source.append("in", 0, [b"%d" % i for i in range(10)])

    async def main() -> None:
        stats = await copy(source, target, max_records=6, idle_timeout_s=5.0)
        assert stats.records == 6
        assert target.committed_offsets[("g", IN0)] == 6

    asyncio.run(main())


def test_the_command_line_names_its_options() -> None:
    args = build_parser().parse_args(
        [
            "copy",
            "--from-bootstrap",
            "a:1",
            "--source-topic",
            "x",
            "--target-topic",
            "y",
            "--group",
            "g",
            "--transactional-id",
            "t",
        ]
    )
    assert (args.from_bootstrap, args.to_bootstrap, args.source_topic) == ("a:1", None, "x")
    assert (args.target_topic, args.group, args.transactional_id) == ("y", "g", "t")
    assert args.start == "earliest" and args.max_records is None
