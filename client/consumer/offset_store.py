"""Where committed offsets live: the seam the group coordinator will plug into.

A consumer with a ``group_id`` uses :class:`~raftka.client.consumer.group_offsets.GroupOffsetStore`
(the group coordinator's OffsetCommit / OffsetFetch) for ``commit()`` and ``committed()``, and
to start each newly assigned partition from its committed offset before falling back to
``auto_offset_reset``. Without a group, ``commit()`` / ``committed()`` raise
:class:`GroupRequiredError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from raftka.client.types import OffsetAndMetadata, TopicPartition

__all__ = ["OffsetAndMetadata", "OffsetStore"]


class OffsetStore(Protocol):
    async def fetch_committed(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The committed offsets of ``partitions`` (partitions without one are left out)."""
        ...

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None: ...

    async def close(self) -> None: ...
