"""The BrokerService's transaction parts without a server: the transactional records form,
decoded read_committed results, InitProducerId's delegation, __transaction_state refused."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import pytest

from raftka.broker.fetch_handler import aborted_in_order, decode_records
from raftka.broker.produce_handler import ProduceHandler
from raftka.broker.producers.state import ProducerStateTable
from raftka.broker.service import BrokerServicer
from raftka.broker.transactions.verification import TxnWriteVerifier
from raftka.common.errors import InvalidRequestError
from raftka.common.group_errors import CoordinatorNotAvailableError
from raftka.common.records import build_batch, validate
from raftka.common.records.control import build_end_txn_marker
from raftka.common.rpc.fetch_wire import AbortedTransaction, FetchResult
from raftka.common.rpc.produce_wire import PartitionData
from raftka.common.storage.txn_index import AbortedTxn
from raftka.common.txn_errors import TransactionAbortableError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

_T = TypeVar("_T")


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def servicer(init: Any = None) -> BrokerServicer:
    """A servicer whose collaborators are never reached by the calls tested here."""
    unused = cast(Any, object())
    return BrokerServicer(
        cluster_id="c",
        replicas=unused,
        follower=unused,
        producer_ids=unused,
        init_transactional_producer=init,
    )


def records_data(**fields: Any) -> PartitionData:
    """A partition in the plain-records form, as the broker receives it."""
    return PartitionData(
        plain=pb.PartitionProduceData(
            partition=0, records=[pb.Record(value=b"a"), pb.Record(value=b"b")], **fields
        )
    )


def test_the_transactional_records_form_builds_a_transactional_batch() -> None:
    data = records_data(producer_id=42, producer_epoch=3, base_sequence=5, transactional=True)
    header = validate(ProduceHandler._batches_of(data))
    assert header.is_transactional and not header.is_control
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 5)
    plain = validate(ProduceHandler._batches_of(records_data(producer_id=42, base_sequence=0)))
    assert not plain.is_transactional


def test_the_transactional_records_form_needs_a_producer_id_and_no_batches() -> None:
    with pytest.raises(InvalidRequestError, match="need producer_id"):
        ProduceHandler._batches_of(records_data(transactional=True))
    batch = bytes(build_batch([(1, None, b"v", ())]))
    with pytest.raises(InvalidRequestError, match="for the records form"):
        ProduceHandler._batches_of(
            PartitionData(plain=pb.PartitionProduceData(batches=batch, transactional=True))
        )


def fetched_result() -> FetchResult:
    """Offsets 0 (plain), 1 (txn of producer 7, aborted), 2 (its ABORT marker), 3 (plain)."""
    batches = (
        bytes(build_batch([(1, None, b"plain", ())], base_offset=0))
        + bytes(
            build_batch(
                [(1, None, b"aborted", ())],
                base_offset=1,
                producer_id=7,
                producer_epoch=0,
                base_sequence=0,
                transactional=True,
            )
        )
        + bytes(build_end_txn_marker(7, 1, False, 0, timestamp=1, base_offset=2))
        + bytes(build_batch([(1, None, b"later", ())], base_offset=3))
    )
    return FetchResult(batches=batches, aborted_transactions=[AbortedTransaction(7, 1)])


def test_decoded_read_committed_results_leave_out_aborted_and_control_records() -> None:
    result = pb.FetchPartitionResult()
    decode_records(result, fetched_result(), isolation_level=1)
    assert [(r.offset, r.value) for r in result.records] == [(0, b"plain"), (3, b"later")]
    # The broker filtered them itself: nothing is left for the caller to drop.
    assert not result.aborted_transactions and not result.batches


def test_decoded_read_uncommitted_results_leave_out_control_records_only() -> None:
    result = pb.FetchPartitionResult()
    decode_records(result, fetched_result(), isolation_level=0)
    assert [(r.offset, r.value) for r in result.records] == [
        (0, b"plain"),
        (1, b"aborted"),
        (3, b"later"),
    ]


def test_init_producer_id_with_a_transactional_id_asks_the_transaction_coordinator() -> None:
    asked: list[tuple[str, int]] = []

    async def init(transactional_id: str, timeout_ms: int) -> tuple[int, int]:
        asked.append((transactional_id, timeout_ms))
        return 1234, 6

    handler = BrokerServicer.InitProducerId.__wrapped__  # type: ignore[attr-defined]
    request = pb.InitProducerIdRequest(transactional_id="t1", transaction_timeout_ms=9000)
    response = run(handler(servicer(init), request, None))
    assert (response.producer_id, response.producer_epoch) == (1234, 6)
    assert asked == [("t1", 9000)]
    with pytest.raises(CoordinatorNotAvailableError, match="no transaction coordinator"):
        run(handler(servicer(), request, None))


def test_produce_to_the_transaction_state_topic_is_refused() -> None:
    result = run(
        servicer()._produce._produce_one(
            "__transaction_state", records_data(), acks=-1, timeout_s=1.0, transactional_id=""
        )
    )
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert "internal topic" in result.error_message


def test_aborted_transactions_are_answered_in_first_offset_order() -> None:
    # As the transaction index holds them: by marker offset (B's marker came first).
    by_marker = [AbortedTxn(5, 40, 60, 40), AbortedTxn(3, 10, 70, 70), AbortedTxn(4, 10, 80, 80)]
    assert [(a.producer_id, a.first_offset) for a in aborted_in_order(by_marker)] == [
        (3, 10),
        (4, 10),
        (5, 40),
    ]


class _Refusing:
    """A coordinator for whom no partition is in the transaction."""

    async def verify(self, transactional_id: str, pid: int, epoch: int, tp: Any) -> None:
        raise TransactionAbortableError(f"{tp} is not in {transactional_id}")


class _Log:
    producer_state = ProducerStateTable()


class _LeaderOf:
    """A led partition whose append must not be reached."""

    def __init__(self) -> None:
        self.log = _Log()
        self.appended = 0

    async def append(self, payload: bytes, *, acks: int, timeout_s: float) -> Any:
        self.appended += 1
        raise AssertionError("a refused write reached the log")

    def leader_partition(self, topic: str, partition: int) -> _LeaderOf:
        return self


def test_an_unverified_transactional_write_is_refused_before_the_append() -> None:
    leader = _LeaderOf()
    service = BrokerServicer(
        cluster_id="c",
        replicas=cast(Any, leader),
        follower=cast(Any, object()),
        producer_ids=cast(Any, object()),
        txn_writes=TxnWriteVerifier(_Refusing()),
    )
    data = records_data(producer_id=42, producer_epoch=3, base_sequence=0, transactional=True)
    result = run(service._produce._produce_one("events", data, -1, 1.0, "t1"))
    assert result.error_code == ErrorCode.TRANSACTION_ABORTABLE
    assert "abort the transaction" in result.error_message
    result = run(service._produce._produce_one("events", data, -1, 1.0, ""))
    assert result.error_code == ErrorCode.INVALID_TXN_STATE
    assert "transactional_id" in result.error_message
    assert leader.appended == 0
