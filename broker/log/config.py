"""A partition log's settings, read from its topic's config overrides.

Topic configs travel as strings (``raftka.common.metadata.topic_configs``); this module turns
the ones storage uses into one typed, frozen value. ``segment.bytes``, ``segment.ms``,
``index.interval.bytes`` and ``file.delete.delay.ms`` shape the underlying
:class:`~raftka.common.storage.SegmentedLog` (:meth:`PartitionLogConfig.log_config`); the rest
are applied by the partition log itself.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from raftka.common.metadata.topic_configs import topic_config_value
from raftka.common.records import Compression
from raftka.common.storage import LogConfig

STORAGE_MAX_BATCH_BYTES = (1 << 31) - 1
"""The segmented log's own batch-size limit. ``max.message.bytes`` is enforced before the log
is called (with an error naming that config), so that changing it needs no reopen."""

_COMPRESSION_TYPES: dict[str, Compression | None] = {
    "producer": None,
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}
"""``compression.type`` values (the topic-config rules allow exactly these) to codecs."""


def _int(overrides: Mapping[str, str], name: str) -> int:
    value = topic_config_value(overrides, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"topic config {name!r} is not an integer: {value!r}")
    return value


def _float(overrides: Mapping[str, str], name: str) -> float:
    value = topic_config_value(overrides, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"topic config {name!r} is not a number: {value!r}")
    return float(value)


def _str(overrides: Mapping[str, str], name: str) -> str:
    value = topic_config_value(overrides, name)
    if not isinstance(value, str):
        raise TypeError(f"topic config {name!r} is not a string: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class PartitionLogConfig:
    """The storage-relevant topic configs of one partition (defaults as Kafka's)."""

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 60 * 60 * 1000
    index_interval_bytes: int = 4096
    max_message_bytes: int = 1048588
    """Largest accepted batch, its 12-byte log overhead included (Kafka's check)."""
    log_append_time: bool = False
    """``message.timestamp.type=LogAppendTime``: the broker stamps each batch's max timestamp."""
    timestamp_before_max_ms: int = (1 << 63) - 1
    """``message.timestamp.before.max.ms``: how far a CreateTime timestamp may be in the past."""
    timestamp_after_max_ms: int = 3_600_000
    """``message.timestamp.after.max.ms``: how far a CreateTime timestamp may be in the future."""
    flush_messages: int = (1 << 63) - 1
    """fsync once this many records are unflushed; 1 means before acknowledging each append."""
    retention_ms: int = 7 * 24 * 60 * 60 * 1000
    """-1 keeps segments forever."""
    retention_bytes: int = -1
    """-1 is unlimited."""
    delete_enabled: bool = True
    """``cleanup.policy`` includes ``delete`` (retention by time and size applies)."""
    compact_enabled: bool = False
    """``cleanup.policy`` includes ``compact``: the log cleaner keeps the latest record per key
    (:mod:`raftka.broker.log.cleaner`)."""
    delete_retention_ms: int = 86_400_000
    """``delete.retention.ms``: how long a tombstone survives the cleaning that first kept it."""
    min_cleanable_dirty_ratio: float = 0.5
    """``min.cleanable.dirty.ratio``: dirty share of the cleanable bytes that starts a cleaning."""
    min_compaction_lag_ms: int = 0
    """``min.compaction.lag.ms``: segments with records younger than this are not cleaned."""
    max_compaction_lag_ms: int = (1 << 63) - 1
    """``max.compaction.lag.ms``: a dirty segment older than this is cleaned whatever the
    ratio."""
    compression: Compression | None = None
    """``compression.type``: the codec stored batches must have (None: ``producer``, keep the
    producer's); the leader recompresses batches in another."""
    file_delete_delay_ms: int = 60_000
    """How long a deleted segment's files stay (renamed ``*.deleted``) before removal."""

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, str]) -> PartitionLogConfig:
        """Typed settings from a topic's overrides; raises InvalidConfigError for a bad value.
        Cached: the partitions of a topic (and topics without overrides) share one parse."""
        return _parse_cached(tuple(sorted(overrides.items())))

    @classmethod
    def _parse(cls, overrides: Mapping[str, str]) -> PartitionLogConfig:
        policy = topic_config_value(overrides, "cleanup.policy")
        policies = policy if isinstance(policy, tuple) else (str(policy),)
        return cls(
            segment_bytes=_int(overrides, "segment.bytes"),
            segment_ms=_int(overrides, "segment.ms"),
            index_interval_bytes=_int(overrides, "index.interval.bytes"),
            max_message_bytes=_int(overrides, "max.message.bytes"),
            log_append_time=_str(overrides, "message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms=_int(overrides, "message.timestamp.before.max.ms"),
            timestamp_after_max_ms=_int(overrides, "message.timestamp.after.max.ms"),
            flush_messages=_int(overrides, "flush.messages"),
            retention_ms=_int(overrides, "retention.ms"),
            retention_bytes=_int(overrides, "retention.bytes"),
            delete_enabled="delete" in policies,
            compact_enabled="compact" in policies,
            delete_retention_ms=_int(overrides, "delete.retention.ms"),
            min_cleanable_dirty_ratio=_float(overrides, "min.cleanable.dirty.ratio"),
            min_compaction_lag_ms=_int(overrides, "min.compaction.lag.ms"),
            max_compaction_lag_ms=_int(overrides, "max.compaction.lag.ms"),
            compression=_COMPRESSION_TYPES[_str(overrides, "compression.type")],
            file_delete_delay_ms=_int(overrides, "file.delete.delay.ms"),
        )

    def log_config(self, *, initial_start_offset: int = 0) -> LogConfig:
        """The segmented log's configuration. Durability is driven by the partition log
        (``flush_every_batch`` stays off so that several appends can share one fsync)."""
        return LogConfig(
            segment_bytes=self.segment_bytes,
            segment_ms=self.segment_ms,
            index_interval_bytes=self.index_interval_bytes,
            max_batch_bytes=STORAGE_MAX_BATCH_BYTES,
            initial_start_offset=initial_start_offset,
            flush_every_batch=False,
            file_delete_delay_ms=self.file_delete_delay_ms,
        )


@functools.lru_cache(maxsize=1024)
def _parse_cached(items: tuple[tuple[str, str], ...]) -> PartitionLogConfig:
    return PartitionLogConfig._parse(dict(items))
