"""Which producer errors are fatal (close the producer), which only abort the transaction, and
which may simply be retried; and that the messages say what to do."""

from __future__ import annotations

import pytest

from raftka.client.errors import PartitionError
from raftka.client.producer.errors import (
    AbortableTransactionError,
    ProducerFatalError,
    ProducerFencedError,
    classify_coordinator_failure,
    classify_send_failure,
    item_error,
)
from raftka.common import group_errors, txn_errors
from raftka.common.errors import RaftkaError, RequestTimedOutError, UnknownTopicOrPartitionError
from raftka.v1.common_pb2 import ErrorCode


@pytest.mark.parametrize(
    "error",
    [
        txn_errors.ProducerFencedError("newer epoch"),
        txn_errors.InvalidProducerIdMappingError("unknown id"),
        txn_errors.InvalidTxnStateError("EndTxn out of state"),
        txn_errors.InvalidTransactionTimeoutError("too long"),
    ],
)
def test_coordinator_refusals_nothing_can_fix_are_fatal(error: RaftkaError) -> None:
    out = classify_coordinator_failure(error, "commit_transaction()")
    assert isinstance(out, ProducerFatalError)
    assert out.__cause__ is error
    assert "close()" in out.message
    assert isinstance(out, ProducerFencedError) == isinstance(error, txn_errors.ProducerFencedError)


@pytest.mark.parametrize(
    "error",
    [
        txn_errors.TransactionAbortableError("abort it"),
        group_errors.UnknownMemberIdError("left the group"),
        PartitionError(ErrorCode.INVALID_RECORD, "bad", "t", 0),
        # Retriable in general, but not retried by the transaction calls: the group's
        # coordinator does not know the topic (offsets of a topic the cluster lacks).
        UnknownTopicOrPartitionError("no such topic on the group's cluster"),
    ],
)
def test_other_refusals_of_a_transaction_call_are_abortable(error: RaftkaError) -> None:
    out = classify_coordinator_failure(error, "send_offsets_to_transaction()")
    assert isinstance(out, AbortableTransactionError)
    assert isinstance(out, txn_errors.TransactionAbortableError), "catchable by the common class"
    assert "abort_transaction()" in out.message


def test_retriable_coordinator_errors_are_left_as_they_are() -> None:
    for error in (
        txn_errors.ConcurrentTransactionsError("busy"),
        RequestTimedOutError("no answer"),
    ):
        assert classify_coordinator_failure(error, "x") is error


@pytest.mark.parametrize(
    "error",
    [
        PartitionError(ErrorCode.INVALID_PRODUCER_EPOCH, "old epoch", "t", 0),
        PartitionError(ErrorCode.INVALID_TXN_STATE, "not in a transaction", "t", 0),
        # KIP-890 part 1: the leader's coordinator says the partition is not in the transaction.
        PartitionError(ErrorCode.TRANSACTION_ABORTABLE, "not in the transaction", "t", 0),
        RequestTimedOutError("delivery timeout"),
    ],
)
def test_a_failed_send_only_dooms_the_transaction(error: RaftkaError) -> None:
    assert isinstance(classify_send_failure(error, "sending"), AbortableTransactionError)


def test_a_leader_whose_verification_could_not_finish_is_retried_and_an_abortable_not() -> None:
    # The leader answers NOT_ENOUGH_REPLICAS while the transaction coordinator is busy or
    # unreachable (nothing written): the sender retries it; TRANSACTION_ABORTABLE it does not.
    assert PartitionError(ErrorCode.NOT_ENOUGH_REPLICAS, "coordinator busy", "t", 0).retriable
    assert not PartitionError(ErrorCode.TRANSACTION_ABORTABLE, "not in it", "t", 0).retriable


def test_a_send_refused_as_fenced_is_fatal() -> None:
    out = classify_send_failure(txn_errors.ProducerFencedError("fenced"), "sending")
    assert isinstance(out, ProducerFencedError)


def test_per_item_codes_map_to_their_classes() -> None:
    assert isinstance(
        item_error(ErrorCode.CONCURRENT_TRANSACTIONS, "", "t-0"),
        txn_errors.ConcurrentTransactionsError,
    )
    assert isinstance(
        item_error(ErrorCode.NOT_COORDINATOR, "", "t-0"), group_errors.NotCoordinatorError
    )
    unknown = item_error(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "no such topic", "t-0")
    assert isinstance(unknown, UnknownTopicOrPartitionError) and unknown.retriable
    other = item_error(ErrorCode.INVALID_RECORD, "bad", "t-0")
    assert isinstance(other, PartitionError) and not other.retriable
    assert "t-0" in other.message
