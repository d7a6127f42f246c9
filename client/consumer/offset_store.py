"""Where committed offsets live: the seam the group coordinator will plug into.

A consumer with a ``group_id`` will be given an :class:`OffsetStore` backed by the group
coordinator (OffsetCommit / OffsetFetch); the consumer uses it for ``commit()`` and
``committed()``, and to start each newly assigned partition from its committed offset before
falling back to ``auto_offset_reset``. Until consumer groups exist, a consumer has no store
and ``commit()`` / ``committed()`` raise :class:`GroupRequiredError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from raftka.client.consumer.errors import GroupRequiredError
from raftka.client.types import TopicPartition


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed offset: the next record to read, as in Kafka."""

    offset: int
    leader_epoch: int | None = None
    metadata: str = ""


class OffsetStore(Protocol):
    async def fetch_committed(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The committed offsets of ``partitions`` (partitions without one are left out)."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None: ...

    async def close(self) -> None: ...


GROUPS_UNAVAILABLE = "consumer groups are not available yet"


def no_group_error(call: str) -> GroupRequiredError:
    return GroupRequiredError(
        f"{call} needs a consumer group (group_id), and {GROUPS_UNAVAILABLE}: track progress "
        "yourself with position() and start from it with seek()"
    )


def unavailable_group_error(group_id: str) -> GroupRequiredError:
    return GroupRequiredError(
        f"group_id={group_id!r}: {GROUPS_UNAVAILABLE}; leave group_id unset and choose "
        "partitions with assign()"
    )
