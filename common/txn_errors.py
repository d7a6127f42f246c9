"""Errors of transactions: the transaction coordinator, transaction markers and the checks a
partition leader makes on transactional batches.

The broker raises them (or reports their codes per item); the client maps a failed call or a
per-item code back to the same class. ``retriable`` says whether the same call may simply be
sent again; the client's transaction manager decides which of the others are fatal for the
producer (fenced) and which only end the current transaction (abortable).
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class InvalidTxnStateError(RaftkaError):
    """The call does not fit the transaction's state (for example EndTxn(commit) right after
    an abort, or a transactional write with no transaction open)."""

    code = ErrorCode.INVALID_TXN_STATE


class InvalidProducerIdMappingError(RaftkaError):
    """The transactional id is unknown to its coordinator or holds another producer id: call
    InitProducerId (init_transactions) again."""

    code = ErrorCode.INVALID_PRODUCER_ID_MAPPING


class InvalidTransactionTimeoutError(RaftkaError):
    """The transaction timeout is not in 1..transaction_max_timeout_ms."""

    code = ErrorCode.INVALID_TRANSACTION_TIMEOUT


class ConcurrentTransactionsError(RaftkaError):
    """The transactional id's previous transaction is still completing: retry shortly."""

    code = ErrorCode.CONCURRENT_TRANSACTIONS
    retriable = True


class TransactionCoordinatorFencedError(RaftkaError):
    """A marker from a coordinator older than one the partition has already heard from."""

    code = ErrorCode.TRANSACTION_COORDINATOR_FENCED


class ProducerFencedError(RaftkaError):
    """A newer producer with the same transactional id called InitProducerId: this one can
    never write or commit again; close it."""

    code = ErrorCode.PRODUCER_FENCED


class TransactionalIdNotFoundError(RaftkaError):
    """The transactional id is not known to its coordinator."""

    code = ErrorCode.TRANSACTIONAL_ID_NOT_FOUND


class TransactionAbortableError(RaftkaError):
    """The transaction cannot go on but can be aborted: abort it, then begin a new one."""

    code = ErrorCode.TRANSACTION_ABORTABLE


class UnstableOffsetCommitError(RaftkaError):
    """A transactional offset commit for the partition is not decided yet: retry shortly."""

    code = ErrorCode.UNSTABLE_OFFSET_COMMIT
    retriable = True
