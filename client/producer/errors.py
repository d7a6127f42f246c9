"""What a producer's errors mean for its user: fatal (the producer is finished: close() it),
abortable (only the current transaction is lost: abort_transaction(), then go on), or a usage
error raised at once with nothing sent.

As in Kafka's clients (KIP-98, KIP-588, KIP-691):

* fatal: the producer was fenced by a newer instance with the same transactional id
  (PRODUCER_FENCED), the coordinator no longer knows this producer id
  (INVALID_PRODUCER_ID_MAPPING after init_transactions), a coordinator refused the
  transaction's own calls as out of state (INVALID_TXN_STATE from AddPartitionsToTxn / EndTxn),
  an invalid transaction timeout, or an authorization failure. Nothing the producer does next
  can succeed, so every later call raises the same error.
* abortable: anything that fails one record of the transaction (a send that failed for good,
  INVALID_PRODUCER_EPOCH or INVALID_TXN_STATE from a partition leader, a delivery timeout),
  TRANSACTION_ABORTABLE, or a refused transactional offset commit (the consumer left its
  group). The transaction can no longer commit, but aborting it puts the producer back in a
  state where it can begin the next one.
"""

from __future__ import annotations

from raftka.client.group_coordinator import REFIND, group_error
from raftka.common import errors, txn_errors
from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class ProducerFatalError(RaftkaError):
    """The producer can never send or commit again: close() it (and create a new one if the
    application must go on). ``__cause__`` holds the error that made it so."""


class ProducerFencedError(txn_errors.ProducerFencedError, ProducerFatalError):
    """A newer producer with the same transactional id (or the same producer id, for an
    idempotent producer) took over: this one must close. Whatever it had not committed is
    aborted by the newer instance."""


class AbortableTransactionError(txn_errors.TransactionAbortableError):
    """The current transaction cannot commit: call abort_transaction(), then begin the next
    one (re-reading input from the last committed offsets). ``__cause__`` holds why."""


FATAL_FROM_COORDINATOR: tuple[type[RaftkaError], ...] = (
    txn_errors.ProducerFencedError,
    txn_errors.InvalidProducerIdMappingError,
    txn_errors.InvalidTxnStateError,
    txn_errors.InvalidTransactionTimeoutError,
    txn_errors.TransactionalIdNotFoundError,
    errors.InvalidRequestError,
)
"""Coordinator answers to the transaction's own calls that leave nothing to do but close."""

_BY_CODE: dict[int, type[RaftkaError]] = {
    cls.code: cls
    for cls in vars(txn_errors).values()
    if isinstance(cls, type) and issubclass(cls, RaftkaError) and cls is not RaftkaError
}


def item_error(code: int, message: str, where: str) -> RaftkaError:
    """A per-item error code of a transaction RPC as the class the server would raise."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return group_error(code, message, where)
    name = ErrorCode.Name(code)  # type: ignore[arg-type]
    return cls.from_wire(f"{where}: {name}" + (f": {message}" if message else ""))


def is_fenced(error: BaseException) -> bool:
    return isinstance(error, txn_errors.ProducerFencedError)


def fatal(error: RaftkaError, doing: str) -> ProducerFatalError:
    """The fatal error to raise for ``error`` (met while ``doing``), saying what to do."""
    if isinstance(error, ProducerFatalError):
        return error
    if is_fenced(error):
        out: ProducerFatalError = ProducerFencedError(
            f"{doing}: this producer was fenced by a newer instance with the same "
            f"transactional id ({error.message}); close() it: it can never commit again"
        )
    else:
        out = ProducerFatalError(
            f"{doing} failed for good ({error.code_name}: {error.message}); the producer cannot "
            "go on: close() it and create a new one"
        )
    out.__cause__ = error
    return out


def abortable(error: BaseException, doing: str) -> AbortableTransactionError:
    """The abortable error to raise for ``error`` (met while ``doing``)."""
    if isinstance(error, AbortableTransactionError):
        return error
    message = error.message if isinstance(error, RaftkaError) else repr(error)
    out = AbortableTransactionError(
        f"{doing}: the transaction cannot commit ({message}); call abort_transaction(), then "
        "begin a new transaction from the last committed input positions"
    )
    out.__cause__ = error
    return out


def classify_send_failure(error: RaftkaError, doing: str) -> RaftkaError:
    """A record of the transaction failed for good: fencing is fatal, anything else only
    dooms the transaction."""
    if is_fenced(error):
        return fatal(error, doing)
    return abortable(error, doing)


def classify_coordinator_failure(error: RaftkaError, doing: str) -> RaftkaError:
    """A transaction call failed for good (retriable errors were retried until the deadline)."""
    if isinstance(error, (*FATAL_FROM_COORDINATOR, ProducerFatalError)):
        return fatal(error, doing)
    if isinstance(error, AbortableTransactionError):
        return error
    if isinstance(error, (*REFIND, *RETRIED_AT_COORDINATOR)):
        return error  # retried until the deadline: the same call may be made again
    return abortable(error, doing)


RETRIED_AT_COORDINATOR = (
    errors.CoordinatorLoadInProgressError,
    txn_errors.ConcurrentTransactionsError,
)
"""Errors the transaction calls retry (with the coordinator errors of ``REFIND``) until
max_block_ms: only those ran out of time. Any other failure, retriable or not (a partition
unknown to the group's coordinator, say), ends the transaction: abort it."""
