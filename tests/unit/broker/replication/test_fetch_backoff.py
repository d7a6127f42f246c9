"""A follower backs off per partition: failing partitions wait (0.1 s doubling to 1 s, afresh
at a new leader epoch) while the others keep being fetched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from raftka.broker.replication.fetch_backoff import FetchBackoff
from raftka.broker.replication.fetcher import FollowedPartition, LeaderFetcher
from raftka.common.rpc.fetch_wire import FetchAnswer, FetchResult
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode
from tests.conditions import until
from tests.unit.broker.replication.test_fetcher import inline_io
from tests.unit.broker.support import open_partition

A, B = ("t", 0), ("t", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_failures_double_the_wait_up_to_the_cap_and_a_new_epoch_starts_afresh() -> None:
    clock = Clock()
    backoff = FetchBackoff(initial_s=0.1, max_s=1.0, clock=clock)
    waits = []
    for _ in range(6):
        backoff.failed(A, 3)
        waits.append(round(backoff.next_expiry(clock.now) or 0, 3))
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert backoff.waiting(A, 3, clock.now) and not backoff.waiting(B, 3, clock.now)
    assert not backoff.waiting(A, 4, clock.now)  # a new leader epoch is not held back
    backoff.failed(A, 4)
    assert backoff.next_expiry(clock.now) == pytest.approx(0.1)
    clock.now += 0.1
    assert not backoff.waiting(A, 4, clock.now)
    backoff.succeeded(A)
    backoff.failed(B, 1)
    backoff.retain([A])
    assert len(backoff) == 0


class FakeStream:
    """The leader: t-0 is refused with NOT_LEADER_OR_FOLLOWER, t-1 is served (no data)."""

    def __init__(self) -> None:
        self.requests: list[set[tuple[str, int]]] = []

    async def fetch(self, request: pb.FetchRequest, **_: Any) -> FetchAnswer:
        asked = {(t.topic, p.partition) for t in request.topics for p in t.partitions}
        self.requests.append(asked)
        await asyncio.sleep(0)
        results = [
            FetchResult(topic=t, partition=p, error_code=ErrorCode.NOT_LEADER_OR_FOLLOWER)
            if (t, p) == A
            else FetchResult(topic=t, partition=p, high_watermark=0)
            for t, p in sorted(asked)
        ]
        return FetchAnswer(results)


def test_a_refused_partition_waits_while_the_others_keep_flowing(tmp_path: Path) -> None:
    logs = [open_partition(tmp_path / str(p)) for p in range(2)]
    fetcher = LeaderFetcher(
        broker_id=2, broker_epoch=lambda: 7, leader_id=1, address="127.0.0.1:1", io=inline_io
    )
    fetcher.set_partitions(
        {(t, p): FollowedPartition(t, p, logs[p], leader_epoch=5) for t, p in (A, B)}
    )
    stream = FakeStream()

    async def main() -> None:
        task = asyncio.create_task(fetcher._fetch_from(stream))  # type: ignore[arg-type]
        try:
            await until(lambda: len(stream.requests) >= 20, what="twenty fetches")
        finally:
            task.cancel()

    asyncio.run(main())
    assert stream.requests[0] == {A, B}
    # t-1 went on being fetched at once; t-0 only after its backoff (0.1 s, then 0.2 s...).
    assert all(B in asked for asked in stream.requests)
    assert sum(A in asked for asked in stream.requests) <= 3
    for plog in logs:
        plog.close()
