"""Producer settings, the sticky partitioner and buffer-memory back-pressure."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import pytest

from raftka.client.producer.buffer_pool import BufferExhaustedError, BufferPool
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.partitioning import StickyPartitioner
from raftka.common.errors import InvalidConfigError
from raftka.common.records.batch import Compression
from raftka.common.records.errors import RecordTooLargeError


def test_defaults_are_kafkas_but_batch_size() -> None:
    c = ProducerConfig(bootstrap_servers=["h:1"])
    assert c.acks_value == -1 and c.idempotent
    assert (c.linger_ms, c.buffer_memory) == (5, 32 * 1024 * 1024)
    assert c.batch_size == 256 * 1024, "Kafka's is 16 KiB; documented why it differs"
    assert (c.delivery_timeout_ms, c.request_timeout_ms, c.max_block_ms) == (
        120_000,
        30_000,
        60_000,
    )
    assert c.max_in_flight_requests_per_connection == 5 and c.retries == 2**31 - 1
    assert c.compression is Compression.NONE


def test_idempotence_follows_kafka_when_unset_and_is_strict_when_set() -> None:
    assert not ProducerConfig(acks=1).idempotent
    assert not ProducerConfig(max_in_flight_requests_per_connection=8).idempotent
    with pytest.raises(InvalidConfigError, match="needs acks=all"):
        ProducerConfig(acks=1, enable_idempotence=True)
    with pytest.raises(InvalidConfigError, match="at most 5"):
        ProducerConfig(enable_idempotence=True, max_in_flight_requests_per_connection=6)
    assert not ProducerConfig(enable_idempotence=False).idempotent


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"acks": 2}, "acks"),
        ({"compression_type": "brotli"}, "compression_type"),
        ({"batch_size": 0}, "batch_size"),
        ({"linger_ms": -1}, "linger_ms"),
        ({"delivery_timeout_ms": 1000}, "delivery_timeout_ms"),
        ({"retry_backoff_ms": 500, "retry_backoff_max_ms": 100}, "retry_backoff_max_ms"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        ProducerConfig(**settings)  # type: ignore[arg-type]


def test_kafka_property_names() -> None:
    c = ProducerConfig.from_properties(
        {
            "bootstrap.servers": "a:1, b:2",
            "linger.ms": "20",
            "acks": "1",
            "compression.type": "zstd",
        }
    )
    assert list(c.bootstrap_servers) == ["a:1", "b:2"]
    assert (c.linger_ms, c.acks_value, c.compression) == (20, 1, Compression.ZSTD)
    assert not c.idempotent
    with pytest.raises(
        InvalidConfigError, match="unknown producer setting 'lingerms'; the settings are"
    ):
        ProducerConfig.from_properties({"lingerms": 1})


def test_sticky_partitioner_switches_after_a_batch_worth_of_bytes() -> None:
    sticky = StickyPartitioner(batch_size=1000, rng=random.Random(5))
    partitions, available = 4, [0, 1, 2, 3]
    asked = []

    def availability() -> tuple[list[int], Callable[[int], int]]:
        asked.append(1)
        return available, lambda _p: 0

    first = sticky.partition("t", partitions, availability)
    for _ in range(9):  # 900 bytes: still below batch_size
        assert sticky.partition("t", partitions, availability) == first
        sticky.on_append("t", first, 100)
    assert len(asked) == 1, "availability is asked only when choosing"
    sticky.on_append("t", first, 100)
    chosen: Counter[int] = Counter()
    for _ in range(400):
        p = sticky.partition("t", partitions, availability)
        chosen[p] += 1
        sticky.on_append("t", p, 1000)
    assert set(chosen) == {0, 1, 2, 3}, "uniform over time"
    assert min(chosen.values()) > 60


def test_sticky_partitioner_skips_leaderless_partitions_and_favours_short_queues() -> None:
    sticky = StickyPartitioner(batch_size=1, rng=random.Random(9))
    queues = {0: 9, 1: 0, 2: 9}
    picks: Counter[int] = Counter()
    for _ in range(1000):
        p = sticky.partition("t", 4, lambda: ([0, 1, 2], queues.__getitem__))
        picks[p] += 1
        sticky.on_append("t", p, 10)
    assert 3 not in picks, "partition 3 has no leader"
    assert picks[1] > 5 * max(picks[0], picks[2])


def test_buffer_pool_blocks_then_fails_clearly_and_grants_in_order() -> None:
    async def main() -> None:
        pool = BufferPool(100)
        await pool.reserve(80, 1)
        with pytest.raises(BufferExhaustedError, match="max_block_ms"):
            await pool.reserve(50, 0.05)
        assert pool.available == 20 and not pool.exhausted
        waiting = asyncio.create_task(pool.reserve(50, 5))
        await asyncio.sleep(0)
        assert _exhausted(pool)
        pool.release(80)
        await waiting
        assert pool.available == 50
        with pytest.raises(RecordTooLargeError, match="buffer_memory"):
            await pool.reserve(101, 1)

    asyncio.run(main())


def _exhausted(pool: BufferPool) -> bool:
    """(A function, so the type checker does not narrow ``pool.exhausted`` across awaits.)"""
    return pool.exhausted
