"""Which ``__consumer_offsets`` partition holds a group: Kafka's placement.

Kafka puts a group in partition ``(groupId.hashCode() & 0x7fffffff) % partitions``, with Java's
``String.hashCode``: ``h = 31 * h + c`` over the string's UTF-16 code units, in 32-bit two's
complement arithmetic. Using the same function puts a group where Kafka would.
"""

from __future__ import annotations

from raftka.common.metadata.topic_names import OFFSETS_TOPIC

__all__ = ["OFFSETS_TOPIC", "java_string_hash", "partition_for"]


def java_string_hash(text: str) -> int:
    """Java's ``String.hashCode()`` of ``text`` as a signed 32-bit int."""
    h = 0
    units = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(units), 2):
        h = (31 * h + ((units[i] << 8) | units[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition of ``group_id`` among ``partitions``."""
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, not {partitions}")
    return (java_string_hash(group_id) & 0x7FFFFFFF) % partitions
