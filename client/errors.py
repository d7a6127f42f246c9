"""How the client reads a partition's error code: which codes are worth a retry, and which
mean its metadata is stale (the leader moved, the topic is new) and must be refreshed first.

The one place the client turns per-partition codes into exceptions; request-level gRPC failures
come back through :func:`raftka.common.rpc.error_from_rpc`.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode

RETRIABLE = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.CORRUPT_MESSAGE,
    }
)
"""Codes after which the same request may succeed later (Kafka's RetriableException set)."""

REFRESH_METADATA = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.KAFKA_STORAGE_ERROR,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.BROKER_NOT_AVAILABLE,
    }
)
"""Codes that say the client's idea of the partition's leader is out of date."""


class PartitionError(RaftkaError):
    """A broker refused one partition's part of a request. ``code`` is the broker's
    ErrorCode; ``retriable`` says whether trying again may help."""

    def __init__(self, code: int, message: str, topic: str = "", partition: int = -1) -> None:
        name = ErrorCode.Name(code) if code in ErrorCode.values() else str(code)  # type: ignore[arg-type]
        where = (f"{topic}-{partition}: " if partition >= 0 else f"{topic}: ") if topic else ""
        super().__init__(f"{where}{name}" + (f": {message}" if message else ""))
        self.code = code  # type: ignore[assignment]
        self.retriable = code in RETRIABLE
        self.topic = topic
        self.partition = partition

    @property
    def refresh_metadata(self) -> bool:
        return self.code in REFRESH_METADATA
