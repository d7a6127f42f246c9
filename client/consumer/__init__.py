"""The consumer: AsyncConsumer (asyncio) and Consumer (blocking facade over it).

Modules, one role each: ``config`` (settings), ``subscription`` (assignment and positions),
``records`` (ConsumerRecord, decoding fetched batches), ``fetch_buffer`` (bounded prefetch
buffer), ``fetcher`` (background fetch loops, resets, metadata refreshes), ``offsets``
(ListOffsets lookups), ``offset_store`` (where committed offsets come from),
``group_offsets`` (the coordinator's committed offsets, auto-commit), ``membership`` (the
group member's heartbeats and reconciliation), ``rebalance`` (handing partitions over, the
callbacks), ``consumer`` (AsyncConsumer), ``blocking`` (Consumer), ``errors``.
"""

from raftka.client.consumer.blocking import Consumer
from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.consumer.errors import (
    CommitFailedError,
    CorruptDataError,
    GroupRequiredError,
    IllegalStateError,
    InvalidBatchError,
    LogTruncationError,
    NoOffsetForPartitionError,
    OffsetOutOfRangeError,
)
from raftka.client.consumer.membership import ConsumerGroupMetadata
from raftka.client.consumer.offset_store import OffsetAndMetadata, OffsetStore
from raftka.client.consumer.offsets import OffsetAndTimestamp
from raftka.client.consumer.records import ConsumerRecord
from raftka.client.types import TopicPartition

__all__ = [
    "AsyncConsumer",
    "CommitFailedError",
    "Consumer",
    "ConsumerConfig",
    "ConsumerGroupMetadata",
    "ConsumerRecord",
    "CorruptDataError",
    "GroupRequiredError",
    "IllegalStateError",
    "InvalidBatchError",
    "LogTruncationError",
    "NoOffsetForPartitionError",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "OffsetOutOfRangeError",
    "OffsetStore",
    "TopicPartition",
]
