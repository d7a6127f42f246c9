"""Raftka's one error hierarchy.

Every error carries the Kafka error code it maps to and whether a client may retry it. The
server maps these to gRPC status codes or per-item error codes in one place
(``raftka.common.rpc.status``); the client maps them back in one place too.

The errors of a subsystem that owns them live next to it and derive from :class:`RaftkaError`:
``raftka.common.records.errors`` (RecordError), ``raftka.common.storage.errors`` (StorageError)
and ``raftka.common.metadata.errors`` (MetadataReplayError). This module imports none of them.
"""

from __future__ import annotations

from typing import Self

from raftka.v1.common_pb2 import ErrorCode


class RaftkaError(Exception):
    """Base class. ``code`` is the wire ErrorCode; ``retriable`` tells clients to retry."""

    code: ErrorCode.ValueType = ErrorCode.UNKNOWN_SERVER_ERROR
    retriable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def code_name(self) -> str:
        return ErrorCode.Name(self.code)

    @classmethod
    def from_wire(cls, message: str) -> Self:
        """Rebuild, on the client, an error a server sent: only the message crosses the wire.
        Subclasses whose constructor takes more than a message override this."""
        return cls(message)


class InvalidRequestError(RaftkaError):
    """The request is malformed; the message names the field and what is allowed."""

    code = ErrorCode.INVALID_REQUEST


class InvalidTopicError(RaftkaError):
    code = ErrorCode.INVALID_TOPIC_EXCEPTION


class TopicAlreadyExistsError(RaftkaError):
    code = ErrorCode.TOPIC_ALREADY_EXISTS


class UnknownTopicOrPartitionError(RaftkaError):
    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    retriable = True


class InvalidPartitionsError(RaftkaError):
    code = ErrorCode.INVALID_PARTITIONS


class InvalidReplicationFactorError(RaftkaError):
    code = ErrorCode.INVALID_REPLICATION_FACTOR


class NotEnoughReplicasError(RaftkaError):
    """acks=all, but the ISR is smaller than min.insync.replicas: nothing was written."""

    code = ErrorCode.NOT_ENOUGH_REPLICAS
    retriable = True


class NotEnoughReplicasAfterAppendError(RaftkaError):
    """Written, but the ISR shrank below min.insync.replicas before the write was replicated."""

    code = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    retriable = True


class UnknownLeaderEpochError(RaftkaError):
    """The request's leader epoch is newer than this replica knows (its metadata lags)."""

    code = ErrorCode.UNKNOWN_LEADER_EPOCH
    retriable = True


class OutOfOrderSequenceError(RaftkaError):
    """A producer's batch does not start at the sequence number the partition expects: the
    next one after the producer's last batch, 0 for a new producer id or a new epoch. Nothing
    was written."""

    code = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


class DuplicateSequenceError(RaftkaError):
    """A produce request mixes batches already written with new ones (a retry is sent as it
    was first sent, so this is a client bug). Nothing was written."""

    code = ErrorCode.DUPLICATE_SEQUENCE_NUMBER


class InvalidProducerEpochError(RaftkaError):
    """The producer epoch is older than the one the partition knows for the producer id: a
    newer producer with this id fenced the sender. Nothing was written."""

    code = ErrorCode.INVALID_PRODUCER_EPOCH


class CoordinatorLoadInProgressError(RaftkaError):
    """The broker cannot serve the request yet (InitProducerId: it has no block of producer
    ids and could not get one from the controller). Retry."""

    code = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    retriable = True


class InvalidConfigError(RaftkaError):
    code = ErrorCode.INVALID_CONFIG


class NotControllerError(RaftkaError):
    """This controller is not the active one. ``leader_id``/``leader_address`` name the one that
    is, when known."""

    code = ErrorCode.NOT_CONTROLLER
    retriable = True

    def __init__(
        self, message: str, leader_id: int | None = None, leader_address: str | None = None
    ) -> None:
        super().__init__(message)
        self.leader_id = leader_id
        self.leader_address = leader_address


class RequestTimedOutError(RaftkaError):
    code = ErrorCode.REQUEST_TIMED_OUT
    retriable = True


class StaleBrokerEpochError(RaftkaError):
    code = ErrorCode.STALE_BROKER_EPOCH


class DuplicateBrokerRegistrationError(RaftkaError):
    """Another incarnation of this broker id still has a live session. A restarted broker
    retries registration until the old session times out (BrokerLifecycle does)."""

    code = ErrorCode.DUPLICATE_BROKER_REGISTRATION


class BrokerIdNotRegisteredError(RaftkaError):
    code = ErrorCode.BROKER_ID_NOT_REGISTERED


class InconsistentClusterIdError(RaftkaError):
    code = ErrorCode.INCONSISTENT_CLUSTER_ID


class NetworkError(RaftkaError):
    """The request (or its answer) was lost on the way; retry it."""

    code = ErrorCode.NETWORK_EXCEPTION
    retriable = True


class FaultInjectionDisabledError(RaftkaError):
    """A fault-injection call reached a node that was not started with faults enabled."""

    code = ErrorCode.INVALID_REQUEST


class ConfigFileError(RaftkaError):
    """A node's config file or command-line flags are invalid."""

    code = ErrorCode.INVALID_CONFIG


class DataDirectoryError(RaftkaError):
    """A data directory is missing, unformatted, or belongs to another node or cluster."""

    code = ErrorCode.KAFKA_STORAGE_ERROR
