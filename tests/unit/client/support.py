"""Helpers for consumer tests on the fake cluster."""

from __future__ import annotations

import time
from typing import Any

from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.consumer.records import ConsumerRecord
from tests.unit.client.fake_cluster import FakeCluster

FAST: dict[str, Any] = {"fetch_max_wait_ms": 200, "retry_backoff_ms": 5, "request_timeout_ms": 2000}


def make_consumer(cluster: FakeCluster, **settings: Any) -> AsyncConsumer:
    return AsyncConsumer(
        bootstrap_servers=cluster.bootstrap, connections=cluster, **{**FAST, **settings}
    )


async def poll_n(
    consumer: AsyncConsumer, n: int, *, timeout_s: float = 5.0
) -> list[ConsumerRecord]:
    """Poll until ``n`` records arrived (fails on more, or on a timeout)."""
    out: list[ConsumerRecord] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(
                f"got {len(out)} of {n} records: {[(r.partition, r.offset) for r in out]}"
            )
        out += await consumer.poll(timeout_ms=remaining * 1000)
    assert len(out) == n, f"expected {n} records, got {len(out)}"
    return out


def offsets_by_partition(records: list[ConsumerRecord]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for r in records:
        out.setdefault(r.partition, []).append(r.offset)
    return out
