"""The one place where errors cross the wire.

Servers wrap their handlers with :func:`rpc_errors`, which turns a :class:`RaftkaError` into a
gRPC status with the ``raftka-error`` (and, where known, ``raftka-leader``) trailing metadata.
Clients turn a failed call back into the same error class with :func:`error_from_rpc`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
import structlog

from raftka.common import errors, group_errors, security_errors, txn_errors
from raftka.common.records import errors as record_errors
from raftka.common.storage import errors as storage_errors
from raftka.v1.common_pb2 import ErrorCode

ERROR_KEY = "raftka-error"
LEADER_KEY = "raftka-leader"

log = structlog.get_logger(__name__)

_STATUS_BY_ERROR: dict[type[errors.RaftkaError], grpc.StatusCode] = {
    errors.InvalidRequestError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidTopicError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidPartitionsError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidReplicationFactorError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidConfigError: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TopicAlreadyExistsError: grpc.StatusCode.ALREADY_EXISTS,
    errors.UnknownTopicOrPartitionError: grpc.StatusCode.NOT_FOUND,
    errors.BrokerIdNotRegisteredError: grpc.StatusCode.NOT_FOUND,
    errors.NotControllerError: grpc.StatusCode.UNAVAILABLE,
    errors.NotEnoughReplicasError: grpc.StatusCode.UNAVAILABLE,
    errors.NotEnoughReplicasAfterAppendError: grpc.StatusCode.UNAVAILABLE,
    errors.UnknownLeaderEpochError: grpc.StatusCode.UNAVAILABLE,
    errors.RequestTimedOutError: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.CoordinatorLoadInProgressError: grpc.StatusCode.UNAVAILABLE,
    errors.OutOfOrderSequenceError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InvalidProducerEpochError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DuplicateSequenceError: grpc.StatusCode.ALREADY_EXISTS,
    errors.StaleBrokerEpochError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DuplicateBrokerRegistrationError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InconsistentClusterIdError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FaultInjectionDisabledError: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NetworkError: grpc.StatusCode.UNAVAILABLE,
    group_errors.NotCoordinatorError: grpc.StatusCode.UNAVAILABLE,
    group_errors.CoordinatorNotAvailableError: grpc.StatusCode.UNAVAILABLE,
    group_errors.InvalidGroupIdError: grpc.StatusCode.INVALID_ARGUMENT,
    group_errors.UnsupportedAssignorError: grpc.StatusCode.INVALID_ARGUMENT,
    group_errors.InvalidRegularExpressionError: grpc.StatusCode.INVALID_ARGUMENT,
    group_errors.OffsetMetadataTooLargeError: grpc.StatusCode.INVALID_ARGUMENT,
    group_errors.GroupIdNotFoundError: grpc.StatusCode.NOT_FOUND,
    group_errors.UnknownMemberIdError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.FencedMemberEpochError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.StaleMemberEpochError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.UnreleasedInstanceIdError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.FencedInstanceIdError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.NonEmptyGroupError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.GroupSubscribedToTopicError: grpc.StatusCode.FAILED_PRECONDITION,
    group_errors.GroupMaxSizeReachedError: grpc.StatusCode.RESOURCE_EXHAUSTED,
    txn_errors.ConcurrentTransactionsError: grpc.StatusCode.UNAVAILABLE,
    txn_errors.ProducerFencedError: grpc.StatusCode.FAILED_PRECONDITION,
    txn_errors.InvalidProducerIdMappingError: grpc.StatusCode.FAILED_PRECONDITION,
    txn_errors.InvalidTxnStateError: grpc.StatusCode.FAILED_PRECONDITION,
    txn_errors.TransactionAbortableError: grpc.StatusCode.FAILED_PRECONDITION,
    txn_errors.InvalidTransactionTimeoutError: grpc.StatusCode.INVALID_ARGUMENT,
    txn_errors.TransactionalIdNotFoundError: grpc.StatusCode.NOT_FOUND,
    txn_errors.TransactionCoordinatorFencedError: grpc.StatusCode.FAILED_PRECONDITION,
    txn_errors.UnstableOffsetCommitError: grpc.StatusCode.UNAVAILABLE,
    security_errors.TopicAuthorizationFailedError: grpc.StatusCode.PERMISSION_DENIED,
    security_errors.GroupAuthorizationFailedError: grpc.StatusCode.PERMISSION_DENIED,
    security_errors.ClusterAuthorizationFailedError: grpc.StatusCode.PERMISSION_DENIED,
    security_errors.TransactionalIdAuthorizationFailedError: grpc.StatusCode.PERMISSION_DENIED,
    security_errors.SecurityDisabledError: grpc.StatusCode.FAILED_PRECONDITION,
    security_errors.AuthenticationFailedError: grpc.StatusCode.UNAUTHENTICATED,
    security_errors.UnacceptableCredentialError: grpc.StatusCode.INVALID_ARGUMENT,
    security_errors.ResourceNotFoundError: grpc.StatusCode.NOT_FOUND,
    security_errors.DuplicateResourceError: grpc.StatusCode.INVALID_ARGUMENT,
    # Record batches: the bytes sent are at fault (a corrupt one may be resent: retriable).
    record_errors.RecordError: grpc.StatusCode.INVALID_ARGUMENT,
    # The segmented log: a disk or server-side fault unless named otherwise below.
    storage_errors.StorageError: grpc.StatusCode.INTERNAL,
    storage_errors.CorruptLogError: grpc.StatusCode.DATA_LOSS,
    storage_errors.LogOffsetOutOfRangeError: grpc.StatusCode.OUT_OF_RANGE,
    storage_errors.UnexpectedAppendOffsetError: grpc.StatusCode.FAILED_PRECONDITION,
    storage_errors.LogClosedError: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: errors.RaftkaError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        code = _STATUS_BY_ERROR.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL


def trailing_metadata_for(error: errors.RaftkaError) -> tuple[tuple[str, str], ...]:
    metadata: list[tuple[str, str]] = [(ERROR_KEY, error.code_name)]
    if isinstance(error, errors.NotControllerError) and error.leader_id is not None:
        metadata.append((LEADER_KEY, f"{error.leader_id}@{error.leader_address or ''}"))
    return tuple(metadata)


H = TypeVar("H", bound=Callable[..., Awaitable[Any]])
S = TypeVar("S", bound=Callable[..., AsyncIterator[Any]])


def rpc_errors(handler: H) -> H:
    """Decorate an async unary servicer method ``(self, request, context)``: map RaftkaError
    to a status with trailing metadata, and log anything unexpected as INTERNAL."""

    @functools.wraps(handler)
    async def wrapper(
        self: object, request: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        try:
            return await handler(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _abort(context, e, handler.__name__)

    return cast(H, wrapper)


def stream_rpc_errors(handler: S) -> S:
    """:func:`rpc_errors` for a servicer method that yields its answers (a response stream):
    an error ends the stream with the same status and trailing metadata."""

    @functools.wraps(handler)
    async def wrapper(
        self: object, requests: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for answer in handler(self, requests, context):
                yield answer
        except grpc.aio.AbortError:
            raise
        except Exception as e:
            await _abort(context, e, handler.__name__)

    return cast(S, wrapper)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], e: Exception, name: str) -> None:
    """Ends the call: a RaftkaError as its status, anything else as INTERNAL (and logged)."""
    if isinstance(e, errors.RaftkaError):
        context.set_trailing_metadata(trailing_metadata_for(e))
        await context.abort(status_for(e), e.message)
    else:
        log.exception("rpc_handler_failed", method=name)
        context.set_trailing_metadata(((ERROR_KEY, "UNKNOWN_SERVER_ERROR"),))
        await context.abort(grpc.StatusCode.INTERNAL, f"{name} failed on the server: {e!r}")


# The wire carries only the code's name: the first class defined with a code stands for it.
_ERROR_BY_NAME: dict[str, type[errors.RaftkaError]] = {}
for _module in (
    errors,
    group_errors,
    security_errors,
    txn_errors,
    record_errors,
    storage_errors,
):
    for _cls in list(vars(_module).values()):
        if isinstance(_cls, type) and issubclass(_cls, errors.RaftkaError):
            _ERROR_BY_NAME.setdefault(ErrorCode.Name(_cls.code), _cls)
_ERROR_BY_NAME["NOT_CONTROLLER"] = errors.NotControllerError
# A node's own data directory never fails a request; a log on a failed disk does.
_ERROR_BY_NAME["KAFKA_STORAGE_ERROR"] = storage_errors.StorageError


def transport_loss(error: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
    """``error`` from a stream call, as a unary call would have said it: a stream whose
    connection died can fail with INTERNAL ("Internal error from Core") where a unary call says
    UNAVAILABLE, so without the server's own error metadata that is UNAVAILABLE (retried as a
    peer that cannot be reached)."""
    if error.code() != grpc.StatusCode.INTERNAL:
        return error
    if any(key == ERROR_KEY for key, _ in error.trailing_metadata() or ()):
        return error  # the server's own answer
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(),
        f"the stream broke: {error.details()}",
    )


def error_from_rpc(
    error: grpc.aio.AioRpcError | grpc.RpcError, target: str = ""
) -> errors.RaftkaError:
    """Map a failed call back to the RaftkaError the server raised (or the closest one)."""
    metadata = dict(_metadata_pairs(error))
    name = metadata.get(ERROR_KEY)
    details = _details(error)
    if name == "NOT_CONTROLLER":
        leader_id, leader_address = parse_leader(metadata.get(LEADER_KEY, ""))
        return errors.NotControllerError(details, leader_id, leader_address)
    if name is not None and name in _ERROR_BY_NAME:
        return _ERROR_BY_NAME[name].from_wire(details)
    code = error.code() if hasattr(error, "code") else None
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        where = f" {target}" if target else ""
        return errors.RequestTimedOutError(f"cannot reach{where}: {details}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.InvalidRequestError(details)
    return errors.RaftkaError(f"{code}: {details}")


def parse_leader(value: str) -> tuple[int | None, str | None]:
    """Parse the ``raftka-leader`` value ``"<id>@<host>:<port>"``."""
    node, at, address = value.partition("@")
    if not at or not node.lstrip("-").isdigit():
        return None, None
    return int(node), (address or None)


def _metadata_pairs(error: grpc.RpcError) -> list[tuple[str, str]]:
    trailing = getattr(error, "trailing_metadata", None)
    if trailing is None:
        return []
    pairs = trailing() or ()
    return [(str(k), v.decode() if isinstance(v, bytes) else str(v)) for k, v in pairs]


def _details(error: grpc.RpcError) -> str:
    details = getattr(error, "details", None)
    return str(details() if callable(details) else error)


def error_from_code(code: int, message: str) -> errors.RaftkaError:
    """The error class of a per-item ErrorCode (e.g. a result's ``error_code``), so callers
    can ``except SecurityDisabledError`` whether a whole call or one item failed."""
    name = ErrorCode.Name(code) if code in ErrorCode.values() else ""  # type: ignore[arg-type]
    cls = _ERROR_BY_NAME.get(name)
    if cls is None:
        error = errors.RaftkaError(f"{name or code}: {message}")
        error.code = code  # type: ignore[assignment]
        return error
    return cls.from_wire(message)
