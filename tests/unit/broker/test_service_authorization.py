"""The BrokerService's authorization, without a server: per-partition refusals in Produce,
Fetch and ListOffsets (nothing written or read), follower fetches only from nodes,
InitProducerId's permissions, Metadata hiding topics, and producer ids bound to their
principal (another client cannot write with, or fence, someone else's producer id)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import pytest

from raftka.broker.log.types import AppendResult, FetchData
from raftka.broker.producers.owners import ProducerOwners, batch_producers
from raftka.broker.service import BrokerServicer
from raftka.common.metadata.image import MetadataImage
from raftka.common.records import build_batch
from raftka.common.rpc.produce_wire import from_message as message
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    OP_DESCRIBE,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.common.security_errors import (
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from raftka.common.txn_errors import InvalidProducerIdMappingError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.common.security.fakes import NODE, FakeAuthorizer, caller

_T = TypeVar("_T")

ALICE, BOB = "User:alice", "User:bob"
GRANTS = {
    (ALICE, OP_WRITE, RESOURCE_TOPIC, "orders"),
    (ALICE, OP_READ, RESOURCE_TOPIC, "orders"),
    (ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders"),
    (BOB, OP_WRITE, RESOURCE_TOPIC, "orders"),
    (BOB, OP_IDEMPOTENT_WRITE, RESOURCE_CLUSTER, "kafka-cluster"),
    (BOB, OP_WRITE, RESOURCE_TRANSACTIONAL_ID, "bob-txn"),
}


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


class Table:
    def entry(self, producer_id: int) -> object | None:
        return None


class Log:
    producer_state = Table()
    log_start_offset = 0


class FakePartition:
    def __init__(self) -> None:
        self.appended: list[bytes] = []
        self.reads = 0
        self.log = Log()
        self.data_arrived = asyncio.Event()

    async def append(self, payload: bytes, *, acks: int, timeout_s: float) -> AppendResult:
        self.appended.append(bytes(payload))
        return AppendResult(len(self.appended) - 1, len(self.appended) - 1, -1, 0)

    async def read_for_consumer(self, *args: Any, **kwargs: Any) -> FetchData:
        self.reads += 1
        return FetchData(b"", 0, 0, 0, 0)

    read_for_follower = read_for_consumer


class Replicas:
    def __init__(self) -> None:
        self.partitions: dict[tuple[str, int], FakePartition] = {}

    def leader_partition(self, topic: str, partition: int) -> FakePartition:
        return self.partitions.setdefault((topic, partition), FakePartition())

    def follower_fetched(self, replica: int) -> None:
        return None


class Ids:
    def __init__(self) -> None:
        self.next = 1000

    async def next_id(self) -> int:
        self.next += 1
        return self.next


class Clients:
    def saw(self, *args: Any) -> str:
        return ""


def servicer(replicas: Replicas | None = None) -> BrokerServicer:
    s = BrokerServicer(
        cluster_id="c",
        replicas=cast(Any, replicas or Replicas()),
        follower=cast(Any, SimpleNamespace(image=MetadataImage())),
        producer_ids=cast(Any, Ids()),
        guard=AccessGuard(FakeAuthorizer(GRANTS)),
    )
    s._clients = cast(Any, Clients())
    return s


def as_(who: str, coro: Coroutine[Any, Any, _T]) -> _T:
    async def bound() -> _T:
        token = bind_caller(caller(who))
        try:
            return await coro
        finally:
            reset_caller(token)

    return run(bound())


def handler(name: str) -> Any:
    return getattr(BrokerServicer, name).__wrapped__


def batch(producer_id: int = -1, epoch: int = 0) -> bytes:
    if producer_id < 0:
        return bytes(build_batch([(1, None, b"v", ())]))
    return bytes(
        build_batch(
            [(1, None, b"v", ())], producer_id=producer_id, producer_epoch=epoch, base_sequence=0
        )
    )


def produce(*topics: str, producer_id: int = -1, epoch: int = 0, txn: str = "") -> Any:
    return message(
        pb.ProduceRequest(
            acks=1,
            transactional_id=txn,
            topics=[
                pb.TopicProduceData(
                    topic=t,
                    partitions=[
                        pb.PartitionProduceData(partition=0, batches=batch(producer_id, epoch))
                    ],
                )
                for t in topics
            ],
        )
    )


def test_produce_to_an_unauthorized_topic_is_refused_per_partition_and_writes_nothing() -> None:
    replicas = Replicas()
    response = as_(
        ALICE, handler("Produce")(servicer(replicas), produce("orders", "payments"), None)
    )
    codes = {r.topic: r.error_code for r in response.results}
    assert codes == {"orders": ErrorCode.NONE, "payments": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    refused = next(r for r in response.results if r.topic == "payments")
    assert "User:alice may not WRITE topic 'payments'" in refused.error_message
    assert ("payments", 0) not in replicas.partitions
    assert len(replicas.partitions["orders", 0].appended) == 1


def test_a_transactional_produce_needs_write_on_its_transactional_id() -> None:
    replicas = Replicas()
    response = as_(ALICE, handler("Produce")(servicer(replicas), produce("orders", txn="t1"), None))
    assert [r.error_code for r in response.results] == [
        ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    ]
    assert not replicas.partitions


def test_a_consumer_fetch_without_read_is_refused_per_partition() -> None:
    replicas = Replicas()
    request = pb.FetchRequest(
        topics=[
            pb.FetchTopic(topic="orders", partitions=[pb.FetchPartition(partition=0)]),
            pb.FetchTopic(topic="payments", partitions=[pb.FetchPartition(partition=0)]),
        ]
    )
    response = as_(ALICE, handler("Fetch")(servicer(replicas), request, None))
    codes = {r.topic: r.error_code for r in response.results}
    assert codes == {"orders": ErrorCode.NONE, "payments": ErrorCode.TOPIC_AUTHORIZATION_FAILED}
    assert ("payments", 0) not in replicas.partitions


def test_a_follower_fetch_needs_cluster_action() -> None:
    request = pb.FetchRequest(
        replica_id=2,
        replica_epoch=5,
        topics=[pb.FetchTopic(topic="orders", partitions=[pb.FetchPartition(partition=0)])],
    )
    replicas = Replicas()
    with pytest.raises(ClusterAuthorizationFailedError, match="CLUSTER_ACTION"):
        as_(ALICE, handler("Fetch")(servicer(replicas), request, None))
    assert not replicas.partitions  # no follower progress recorded: the HW cannot move
    response = as_(NODE, handler("Fetch")(servicer(replicas), request, None))
    assert response.results[0].error_code == ErrorCode.NONE


def test_list_offsets_needs_describe() -> None:
    request = pb.ListOffsetsRequest(
        topics=[pb.ListOffsetsTopic(topic="payments", partitions=[pb.ListOffsetsPartition()])]
    )
    response = as_(ALICE, handler("ListOffsets")(servicer(), request, None))
    assert response.results[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED


def test_init_producer_id_needs_idempotent_write_or_write_on_some_topic() -> None:
    init = handler("InitProducerId")
    assert as_(BOB, init(servicer(), pb.InitProducerIdRequest(), None)).producer_id > 0
    assert as_(ALICE, init(servicer(), pb.InitProducerIdRequest(), None)).producer_id > 0
    with pytest.raises(ClusterAuthorizationFailedError, match="IDEMPOTENT_WRITE"):
        as_("User:carol", init(servicer(), pb.InitProducerIdRequest(), None))
    with pytest.raises(TransactionalIdAuthorizationFailedError):
        as_(ALICE, init(servicer(), pb.InitProducerIdRequest(transactional_id="t1"), None))


def test_another_principal_cannot_write_with_a_producer_id_issued_to_someone_else() -> None:
    replicas = Replicas()
    s = servicer(replicas)
    pid = as_(ALICE, handler("InitProducerId")(s, pb.InitProducerIdRequest(), None)).producer_id
    # Bob (who may write the topic) sends a higher epoch for alice's producer id: refused
    # before the partition sees it, so alice is not fenced.
    response = as_(BOB, handler("Produce")(s, produce("orders", producer_id=pid, epoch=5), None))
    assert response.results[0].error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert not replicas.partitions["orders", 0].appended
    response = as_(ALICE, handler("Produce")(s, produce("orders", producer_id=pid), None))
    assert response.results[0].error_code == ErrorCode.NONE


def test_the_first_writer_of_a_producer_id_on_a_partition_owns_it_there() -> None:
    replicas = Replicas()
    s = servicer(replicas)
    # Producer id 77 was issued by another broker: the partition binds it to its first writer.
    ok = as_(ALICE, handler("Produce")(s, produce("orders", producer_id=77), None))
    assert ok.results[0].error_code == ErrorCode.NONE
    fenced = as_(BOB, handler("Produce")(s, produce("orders", producer_id=77, epoch=9), None))
    assert fenced.results[0].error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert len(replicas.partitions["orders", 0].appended) == 1


class RefusingVerifier:
    """A transaction coordinator that does not know the producer id as the id's."""

    async def check(self, _topic: str, _partition: int, transactional_id: str, *_: Any) -> None:
        if transactional_id:  # non-transactional writes pass, as with the real verifier
            raise InvalidProducerIdMappingError(f"producer id 77 is not {transactional_id}'s")


def test_a_refused_transactional_batch_does_not_take_the_producer_id() -> None:
    """Bob sends alice's producer id in a transactional batch of his own transaction: the
    coordinator refuses it, and alice keeps her producer id (the binding moved before the
    check once, so her next write was refused)."""
    replicas = Replicas()
    s = servicer(replicas)
    s._produce._txn_writes = cast(Any, RefusingVerifier())
    assert (
        as_(ALICE, handler("Produce")(s, produce("orders", producer_id=77), None))
        .results[0]
        .error_code
        == ErrorCode.NONE
    )
    forged = bytes(
        build_batch(
            [(1, None, b"v", ())],
            producer_id=77,
            producer_epoch=5,
            base_sequence=0,
            transactional=True,
        )
    )
    request = message(
        pb.ProduceRequest(
            acks=1,
            transactional_id="bob-txn",
            topics=[
                pb.TopicProduceData(
                    topic="orders",
                    partitions=[pb.PartitionProduceData(partition=0, batches=forged)],
                )
            ],
        )
    )
    response = as_(BOB, handler("Produce")(s, request, None))
    assert response.results[0].error_code == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    again = as_(ALICE, handler("Produce")(s, produce("orders", producer_id=77), None))
    assert again.results[0].error_code == ErrorCode.NONE
    assert len(replicas.partitions["orders", 0].appended) == 2


def test_owners_let_a_transactional_batch_move_the_binding_and_stay_bounded() -> None:
    owners = ProducerOwners()
    key = FakePartition()
    txn = bytes(
        build_batch(
            [(1, None, b"v", ())],
            producer_id=5,
            producer_epoch=1,
            base_sequence=0,
            transactional=True,
        )
    )
    assert list(batch_producers(txn + batch(6))) == [(5, True), (6, False)]
    owners.check_write(key, batch(5), ALICE, lambda _: True, name="t-0")
    owners.check_write(key, txn, BOB, lambda _: True, name="t-0")  # authorized by its txn id
    # Checked only: the write may still be refused (by the transaction coordinator).
    owners.check_write(key, batch(5), ALICE, lambda _: True, name="t-0")
    owners.written(key, txn, BOB)  # written: the binding moves
    with pytest.raises(InvalidProducerIdMappingError):
        owners.check_write(key, batch(5), ALICE, lambda _: True, name="t-0")
    for pid in range(100, 3000):  # producers that expired from the partition's state
        owners.check_write(key, batch(pid), ALICE, lambda p: p == 5, name="t-0")
    assert len(owners._writers[key].owners) < 2100


def test_metadata_leaves_out_topics_the_caller_may_not_describe() -> None:
    class Image:
        brokers: dict[int, Any] = {}

        def unfenced_brokers(self) -> list[Any]:
            return []

        def topic_names(self) -> list[str]:
            return ["orders", "payments"]

        def topic(self, name: str) -> None:
            return None

    class Follower:
        image = Image()
        index = 3

    s = servicer()
    s._follower = cast(Any, Follower())
    listed = as_(ALICE, handler("Metadata")(s, pb.MetadataRequest(), None))
    assert [t.name for t in listed.topics] == ["orders"]
    named = as_(ALICE, handler("Metadata")(s, pb.MetadataRequest(topics=["payments"]), None))
    assert named.topics[0].error_code == ErrorCode.TOPIC_AUTHORIZATION_FAILED
