from __future__ import annotations

import pytest

from raftka.client.producer.partitioner import murmur2, partition_for_key


@pytest.mark.parametrize(
    ("key", "expected"),
    [(b"21", -973932308), (b"foobar", -790332482), (b"abc", 479470107)],
)
def test_kafka_murmur2_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_positive_modulo() -> None:
    assert partition_for_key(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert {partition_for_key(str(i).encode(), 3) for i in range(100)} == {0, 1, 2}
    with pytest.raises(ValueError):
        partition_for_key(b"x", 0)
