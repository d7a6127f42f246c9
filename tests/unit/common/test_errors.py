"""Every error in raftka.common is one RaftkaError tree with an intended wire code and status."""

from __future__ import annotations

import importlib
import pkgutil

import grpc
import pytest

import raftka.common
from raftka.common import errors
from raftka.common import group_errors as ge
from raftka.common import security_errors as se
from raftka.common import txn_errors as te
from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.records import errors as record_errors
from raftka.common.rpc.channels import PlaintextRefusedError, PlaintextTokenError
from raftka.common.rpc.status import error_from_rpc, status_for, trailing_metadata_for
from raftka.common.security.listeners import ListenerConfigError
from raftka.common.security.tls import TlsConfigError
from raftka.common.storage import errors as storage_errors
from raftka.v1.common_pb2 import ErrorCode

S = grpc.StatusCode

# class -> (ErrorCode name, retriable, gRPC status). A new error must be added here on purpose.
INTENDED: dict[type[errors.RaftkaError], tuple[str, bool, grpc.StatusCode]] = {
    errors.RaftkaError: ("UNKNOWN_SERVER_ERROR", False, S.INTERNAL),
    errors.InvalidRequestError: ("INVALID_REQUEST", False, S.INVALID_ARGUMENT),
    errors.InvalidTopicError: ("INVALID_TOPIC_EXCEPTION", False, S.INVALID_ARGUMENT),
    errors.TopicAlreadyExistsError: ("TOPIC_ALREADY_EXISTS", False, S.ALREADY_EXISTS),
    errors.UnknownTopicOrPartitionError: ("UNKNOWN_TOPIC_OR_PARTITION", True, S.NOT_FOUND),
    errors.InvalidPartitionsError: ("INVALID_PARTITIONS", False, S.INVALID_ARGUMENT),
    errors.InvalidReplicationFactorError: ("INVALID_REPLICATION_FACTOR", False, S.INVALID_ARGUMENT),
    errors.InvalidConfigError: ("INVALID_CONFIG", False, S.INVALID_ARGUMENT),
    errors.NotControllerError: ("NOT_CONTROLLER", True, S.UNAVAILABLE),
    errors.RequestTimedOutError: ("REQUEST_TIMED_OUT", True, S.DEADLINE_EXCEEDED),
    errors.StaleBrokerEpochError: ("STALE_BROKER_EPOCH", False, S.FAILED_PRECONDITION),
    errors.DuplicateBrokerRegistrationError: (
        "DUPLICATE_BROKER_REGISTRATION",
        False,
        S.FAILED_PRECONDITION,
    ),
    errors.BrokerIdNotRegisteredError: ("BROKER_ID_NOT_REGISTERED", False, S.NOT_FOUND),
    errors.InconsistentClusterIdError: ("INCONSISTENT_CLUSTER_ID", False, S.FAILED_PRECONDITION),
    errors.NotEnoughReplicasError: ("NOT_ENOUGH_REPLICAS", True, S.UNAVAILABLE),
    errors.NetworkError: ("NETWORK_EXCEPTION", True, S.UNAVAILABLE),
    errors.FaultInjectionDisabledError: ("INVALID_REQUEST", False, S.FAILED_PRECONDITION),
    errors.NotEnoughReplicasAfterAppendError: (
        "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        True,
        S.UNAVAILABLE,
    ),
    errors.UnknownLeaderEpochError: ("UNKNOWN_LEADER_EPOCH", True, S.UNAVAILABLE),
    errors.OutOfOrderSequenceError: ("OUT_OF_ORDER_SEQUENCE_NUMBER", False, S.FAILED_PRECONDITION),
    errors.DuplicateSequenceError: ("DUPLICATE_SEQUENCE_NUMBER", False, S.ALREADY_EXISTS),
    errors.InvalidProducerEpochError: ("INVALID_PRODUCER_EPOCH", False, S.FAILED_PRECONDITION),
    errors.CoordinatorLoadInProgressError: ("COORDINATOR_LOAD_IN_PROGRESS", True, S.UNAVAILABLE),
    ge.NotCoordinatorError: ("NOT_COORDINATOR", True, S.UNAVAILABLE),
    ge.CoordinatorNotAvailableError: ("COORDINATOR_NOT_AVAILABLE", True, S.UNAVAILABLE),
    ge.InvalidGroupIdError: ("INVALID_GROUP_ID", False, S.INVALID_ARGUMENT),
    ge.UnsupportedAssignorError: ("UNSUPPORTED_ASSIGNOR", False, S.INVALID_ARGUMENT),
    ge.InvalidRegularExpressionError: ("INVALID_REGULAR_EXPRESSION", False, S.INVALID_ARGUMENT),
    ge.OffsetMetadataTooLargeError: ("OFFSET_METADATA_TOO_LARGE", False, S.INVALID_ARGUMENT),
    ge.GroupIdNotFoundError: ("GROUP_ID_NOT_FOUND", False, S.NOT_FOUND),
    ge.UnknownMemberIdError: ("UNKNOWN_MEMBER_ID", False, S.FAILED_PRECONDITION),
    ge.FencedMemberEpochError: ("FENCED_MEMBER_EPOCH", False, S.FAILED_PRECONDITION),
    ge.StaleMemberEpochError: ("STALE_MEMBER_EPOCH", False, S.FAILED_PRECONDITION),
    ge.UnreleasedInstanceIdError: ("UNRELEASED_INSTANCE_ID", False, S.FAILED_PRECONDITION),
    ge.FencedInstanceIdError: ("FENCED_INSTANCE_ID", False, S.FAILED_PRECONDITION),
    ge.NonEmptyGroupError: ("NON_EMPTY_GROUP", False, S.FAILED_PRECONDITION),
    ge.GroupSubscribedToTopicError: ("GROUP_SUBSCRIBED_TO_TOPIC", False, S.FAILED_PRECONDITION),
    ge.GroupMaxSizeReachedError: ("GROUP_MAX_SIZE_REACHED", False, S.RESOURCE_EXHAUSTED),
    te.InvalidTxnStateError: ("INVALID_TXN_STATE", False, S.FAILED_PRECONDITION),
    te.InvalidProducerIdMappingError: ("INVALID_PRODUCER_ID_MAPPING", False, S.FAILED_PRECONDITION),
    te.InvalidTransactionTimeoutError: ("INVALID_TRANSACTION_TIMEOUT", False, S.INVALID_ARGUMENT),
    te.ConcurrentTransactionsError: ("CONCURRENT_TRANSACTIONS", True, S.UNAVAILABLE),
    te.TransactionCoordinatorFencedError: (
        "TRANSACTION_COORDINATOR_FENCED",
        False,
        S.FAILED_PRECONDITION,
    ),
    te.ProducerFencedError: ("PRODUCER_FENCED", False, S.FAILED_PRECONDITION),
    te.TransactionalIdNotFoundError: ("TRANSACTIONAL_ID_NOT_FOUND", False, S.NOT_FOUND),
    te.TransactionAbortableError: ("TRANSACTION_ABORTABLE", False, S.FAILED_PRECONDITION),
    te.UnstableOffsetCommitError: ("UNSTABLE_OFFSET_COMMIT", True, S.UNAVAILABLE),
    se.TopicAuthorizationFailedError: ("TOPIC_AUTHORIZATION_FAILED", False, S.PERMISSION_DENIED),
    se.GroupAuthorizationFailedError: ("GROUP_AUTHORIZATION_FAILED", False, S.PERMISSION_DENIED),
    se.ClusterAuthorizationFailedError: (
        "CLUSTER_AUTHORIZATION_FAILED",
        False,
        S.PERMISSION_DENIED,
    ),
    se.TransactionalIdAuthorizationFailedError: (
        "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        False,
        S.PERMISSION_DENIED,
    ),
    se.SecurityDisabledError: ("SECURITY_DISABLED", False, S.FAILED_PRECONDITION),
    se.AuthenticationFailedError: ("SASL_AUTHENTICATION_FAILED", False, S.UNAUTHENTICATED),
    se.UnacceptableCredentialError: ("UNACCEPTABLE_CREDENTIAL", False, S.INVALID_ARGUMENT),
    se.ResourceNotFoundError: ("RESOURCE_NOT_FOUND", False, S.NOT_FOUND),
    se.DuplicateResourceError: ("DUPLICATE_RESOURCE", False, S.INVALID_ARGUMENT),
    # A node's own startup problems: never a request's fault.
    PlaintextRefusedError: ("INVALID_CONFIG", False, S.INTERNAL),
    TlsConfigError: ("INVALID_CONFIG", False, S.INTERNAL),
    ListenerConfigError: ("INVALID_CONFIG", False, S.INTERNAL),
    # A client's own setting: never sent.
    PlaintextTokenError: ("INVALID_CONFIG", False, S.INVALID_ARGUMENT),
    errors.ConfigFileError: ("INVALID_CONFIG", False, S.INTERNAL),
    errors.DataDirectoryError: ("KAFKA_STORAGE_ERROR", False, S.INTERNAL),
    MetadataReplayError: ("UNKNOWN_SERVER_ERROR", False, S.INTERNAL),
    record_errors.RecordError: ("INVALID_RECORD", False, S.INVALID_ARGUMENT),
    record_errors.CorruptRecordError: ("CORRUPT_MESSAGE", True, S.INVALID_ARGUMENT),
    record_errors.InvalidRecordError: ("INVALID_RECORD", False, S.INVALID_ARGUMENT),
    record_errors.UnsupportedCompressionError: (
        "UNSUPPORTED_COMPRESSION_TYPE",
        False,
        S.INVALID_ARGUMENT,
    ),
    record_errors.InvalidTimestampError: ("INVALID_TIMESTAMP", False, S.INVALID_ARGUMENT),
    record_errors.RecordTooLargeError: ("MESSAGE_TOO_LARGE", False, S.INVALID_ARGUMENT),
    storage_errors.StorageError: ("KAFKA_STORAGE_ERROR", False, S.INTERNAL),
    storage_errors.LogOffsetOutOfRangeError: ("OFFSET_OUT_OF_RANGE", False, S.OUT_OF_RANGE),
    storage_errors.UnexpectedAppendOffsetError: (
        "INVALID_REQUEST",
        False,
        S.FAILED_PRECONDITION,
    ),
    storage_errors.LogClosedError: ("KAFKA_STORAGE_ERROR", False, S.UNAVAILABLE),
    storage_errors.CorruptLogError: ("KAFKA_STORAGE_ERROR", False, S.DATA_LOSS),
    storage_errors.DamagedBatchError: ("CORRUPT_MESSAGE", True, S.DATA_LOSS),
}


def _common_errors() -> set[type[errors.RaftkaError]]:
    """Every RaftkaError class defined anywhere in raftka.common (importing every module)."""
    for module in pkgutil.walk_packages(raftka.common.__path__, "raftka.common."):
        importlib.import_module(module.name)
    found: set[type[errors.RaftkaError]] = set()
    pending: list[type[errors.RaftkaError]] = [errors.RaftkaError]
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("raftka.common.") and cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return found


ALL = sorted(INTENDED, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def test_every_common_error_is_listed() -> None:
    assert _common_errors() == set(INTENDED)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_intended_code_and_retriable(cls: type[errors.RaftkaError]) -> None:
    name, retriable, _ = INTENDED[cls]
    assert ErrorCode.Name(cls.code) == name
    assert cls.retriable is retriable
    error = cls.from_wire("what went wrong")
    assert (error.code_name, error.message, str(error)) == (name, "what went wrong", error.message)


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_status_for(cls: type[errors.RaftkaError]) -> None:
    assert status_for(cls.from_wire("x")) == INTENDED[cls][2]


class _FailedCall:
    """What error_from_rpc reads of a failed call: status, details and trailing metadata."""

    def __init__(self, status: grpc.StatusCode, details: str, metadata: object) -> None:
        self._status, self._details, self._metadata = status, details, metadata

    def code(self) -> grpc.StatusCode:
        return self._status

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> object:
        return self._metadata


def _received(sent: errors.RaftkaError) -> errors.RaftkaError:
    """What a client makes of ``sent`` raised in an rpc_errors handler."""
    return error_from_rpc(_FailedCall(status_for(sent), sent.message, trailing_metadata_for(sent)))


@pytest.mark.parametrize("cls", ALL, ids=lambda cls: cls.__name__)
def test_round_trip_keeps_code_and_message(cls: type[errors.RaftkaError]) -> None:
    sent = cls.from_wire("what went wrong")
    received = _received(sent)
    assert (received.code, received.message) == (sent.code, sent.message)


def test_round_trip_classes() -> None:
    out_of_range = _received(storage_errors.LogOffsetOutOfRangeError(7, 1, 5))
    assert isinstance(out_of_range, storage_errors.LogOffsetOutOfRangeError)
    assert out_of_range.message == "offset 7 is outside the log range [1, 5)"
    assert out_of_range.offset == storage_errors.UNKNOWN_OFFSET
    corrupt = _received(record_errors.CorruptRecordError("CRC-32C mismatch"))
    assert isinstance(corrupt, record_errors.CorruptRecordError) and corrupt.retriable
    # Shared codes come back as the family's base class.
    assert type(_received(storage_errors.LogClosedError("closed"))) is storage_errors.StorageError
    assert type(_received(record_errors.InvalidRecordError("bad"))) is record_errors.RecordError
    unexpected = storage_errors.UnexpectedAppendOffsetError(2, 5, 0)
    assert type(_received(unexpected)) is errors.InvalidRequestError


def test_storage_errors_keep_their_attributes() -> None:
    error = storage_errors.UnexpectedAppendOffsetError(expected=2, actual=5, batch_index=1)
    assert isinstance(error, errors.RaftkaError)
    assert (error.expected, error.actual, error.batch_index) == (2, 5, 1)
    assert error.message == "batch 1 has base offset 5, the log expects 2; nothing was written"
