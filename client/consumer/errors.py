"""Errors the consumer raises to the application (all RaftkaErrors, each saying what to do)."""

from __future__ import annotations

from collections.abc import Mapping

from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.records.errors import CorruptRecordError
from raftka.v1.common_pb2 import ErrorCode


class NoOffsetForPartitionError(RaftkaError):
    """A partition has no position and ``auto_offset_reset`` is ``"none"``."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE

    def __init__(self, partitions: list[TopicPartition]) -> None:
        names = ", ".join(str(tp) for tp in sorted(partitions))
        super().__init__(
            f"no position for {names} and auto_offset_reset is 'none': call seek(), "
            "seek_to_beginning() or seek_to_end() first, or set auto_offset_reset to "
            "'earliest' or 'latest'"
        )
        self.partitions = sorted(partitions)


class OffsetOutOfRangeError(RaftkaError):
    """A fetch position is outside the partition's log and ``auto_offset_reset`` is
    ``"none"``. ``offsets`` maps each partition to the out-of-range position."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE

    def __init__(self, offsets: Mapping[TopicPartition, int], detail: str = "") -> None:
        names = ", ".join(f"{tp} at offset {o}" for tp, o in sorted(offsets.items()))
        super().__init__(
            f"position out of range: {names}"
            + (f" ({detail})" if detail else "")
            + "; auto_offset_reset is 'none': seek() to a valid offset, or call "
            "seek_to_beginning() or seek_to_end()"
        )
        self.offsets = dict(offsets)


class LogTruncationError(RaftkaError):
    """The leader's log no longer holds records this consumer already returned: an unclean
    leader election truncated them (KIP-320). ``divergent_offsets`` maps each partition to
    the offset where the leader's log diverges from what was read. Raised by poll() when
    ``auto_offset_reset`` is ``"none"``; otherwise the consumer logs
    ``consumer_log_truncated`` and continues from that offset."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE

    def __init__(self, divergent_offsets: Mapping[TopicPartition, tuple[int, int]]) -> None:
        names = ", ".join(
            f"{tp} (position {position}, leader's log ends at {end})"
            for tp, (position, end) in sorted(divergent_offsets.items())
        )
        super().__init__(
            f"log truncated by an unclean leader election: {names}; records before the "
            "position were returned but are gone. seek() to the divergence point to continue "
            "from there, or set auto_offset_reset to continue from it automatically"
        )
        self.divergent_offsets = {tp: end for tp, (_position, end) in divergent_offsets.items()}


class CorruptDataError(CorruptRecordError):
    """Records of ``topic_partition`` at or after ``offset`` came back damaged (the
    consumer's CRC check failed) or the broker refused to serve them because its copy is
    damaged (CORRUPT_MESSAGE). poll() raises it until the partition is sought."""

    def __init__(
        self, topic_partition: TopicPartition, offset: int, detail: str, *, advice: str = ""
    ) -> None:
        super().__init__(
            f"{topic_partition} at offset {offset}: damaged data ({detail}); "
            + (
                advice
                or f"seek() {topic_partition} to offset {offset} to fetch it again (a broker "
                "with a damaged copy hands leadership to a healthy replica), or past it to "
                "skip it"
            )
        )
        self.topic_partition = topic_partition
        self.topic, self.partition = topic_partition
        self.offset = offset


class InvalidBatchError(CorruptDataError):
    """A stored batch of ``topic``/``partition`` passed its CRC check but its records cannot
    be read (a count that lies, a bad varint, a truncated record, a compressed payload that is
    garbage): a broker that did not yet validate every record wrote it. Fetching it again
    cannot help, so this is not retriable. poll() first returns every record before it, then
    raises this (at ``offset``, where the position stays) until the partition is sought;
    ``consumer.seek(error.topic_partition, error.next_offset)`` skips the batch (its records
    are lost to this consumer) and consumption goes on after it."""

    retriable = False

    def __init__(
        self, topic_partition: TopicPartition, offset: int, next_offset: int, detail: str
    ) -> None:
        super().__init__(
            topic_partition,
            offset,
            f"the batch ending before offset {next_offset} holds unreadable records: {detail}",
            advice=f"it was stored without record validation and reads the same from every "
            f"replica. seek() {topic_partition} to offset {next_offset} (error.next_offset) to "
            "skip it and its records",
        )
        self.next_offset = next_offset


class IllegalStateError(RaftkaError):
    """The call does not fit the consumer's state (a partition not assigned, a closed
    consumer)."""

    code = ErrorCode.INVALID_REQUEST


class GroupRequiredError(RaftkaError):
    """Committed offsets live in a consumer group, which this consumer does not have."""

    code = ErrorCode.INVALID_REQUEST


class CommitFailedError(RaftkaError):
    """The coordinator refused a commit because this consumer is no longer the member that
    owns the partitions (its membership expired, it was fenced, or a rebalance moved on:
    UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, FENCED_MEMBER_EPOCH). The records since the last
    commit may be delivered to another member again."""

    code = ErrorCode.UNKNOWN_MEMBER_ID
