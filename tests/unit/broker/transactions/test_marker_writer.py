"""MarkerWriter: WriteTxnMarkers on the partition leader, with fake partitions (what each
partition answers, in request order; concurrency; the request bounds; the group hook)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from raftka.broker.log.types import StaleLeaderEpochError
from raftka.broker.partition import NotLeaderOrFollowerError
from raftka.broker.transactions.marker_writer import MarkerPartition, MarkerWriter
from raftka.common.errors import (
    InvalidProducerEpochError,
    InvalidRequestError,
    NotEnoughReplicasError,
    RaftkaError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.storage.errors import LogClosedError
from raftka.common.txn_errors import TransactionCoordinatorFencedError
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

_T = TypeVar("_T")

Written = tuple[str, int, int, int, bool, int, float]
"""(topic, partition, producer id, epoch, committed, coordinator epoch, timeout)."""


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


class FakePartition:
    def __init__(self, topic: str, partition: int, replicas: FakeReplicas) -> None:
        self.topic, self.partition, self.replicas = topic, partition, replicas

    async def write_txn_marker(
        self,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        coordinator_epoch: int,
        *,
        timeout_s: float,
    ) -> None:
        self.replicas.started += 1
        await self.replicas.release.wait()
        failure = self.replicas.failures.get((self.topic, self.partition))
        if failure is not None:
            raise failure
        self.replicas.written.append(
            (
                self.topic,
                self.partition,
                producer_id,
                producer_epoch,
                committed,
                coordinator_epoch,
                timeout_s,
            )
        )


class FakeReplicas:
    """Leads every partition of topics in ``leads`` (partitions 0-9), and knows no others."""

    def __init__(self, leads: tuple[str, ...] = ("events", "__consumer_offsets")) -> None:
        self.leads = leads
        self.written: list[Written] = []
        self.failures: dict[tuple[str, int], RaftkaError] = {}
        self.not_led: set[tuple[str, int]] = set()
        self.started = 0
        self.release = asyncio.Event()
        self.release.set()

    def leader_partition(self, topic: str, partition: int) -> MarkerPartition:
        if topic not in self.leads or not 0 <= partition < 10:
            raise UnknownTopicOrPartitionError(f"{topic}-{partition} does not exist")
        if (topic, partition) in self.not_led:
            raise NotLeaderOrFollowerError(f"broker 1 does not lead {topic}-{partition}", 2, 3)
        return FakePartition(topic, partition, self)


def marker(
    partitions: dict[str, list[int]],
    *,
    producer_id: int = 7,
    epoch: int = 2,
    committed: bool = True,
    coordinator_epoch: int = 5,
) -> tpb.TxnMarker:
    return tpb.TxnMarker(
        producer_id=producer_id,
        producer_epoch=epoch,
        committed=committed,
        coordinator_epoch=coordinator_epoch,
        topics=[tpb.TxnTopicPartitions(topic=t, partitions=ps) for t, ps in partitions.items()],
    )


def codes(response: tpb.WriteTxnMarkersResponse) -> list[list[tuple[str, int, str]]]:
    return [
        [(p.topic, p.partition, ErrorCode.Name(p.error_code)) for p in m.partitions]
        for m in response.markers
    ]


def test_every_partition_of_every_marker_is_written_and_answered_in_request_order() -> None:
    replicas = FakeReplicas()
    writer = MarkerWriter(replicas, timeout_s=3.0)
    request = tpb.WriteTxnMarkersRequest(
        markers=[
            marker({"events": [2, 0]}),
            marker({"events": [1]}, producer_id=9, epoch=4, committed=False, coordinator_epoch=6),
        ]
    )
    response = run(writer.write(request))
    assert [m.producer_id for m in response.markers] == [7, 9]
    assert codes(response) == [
        [("events", 2, "NONE"), ("events", 0, "NONE")],
        [("events", 1, "NONE")],
    ]
    assert sorted(replicas.written) == [
        ("events", 0, 7, 2, True, 5, 3.0),
        ("events", 1, 9, 4, False, 6, 3.0),
        ("events", 2, 7, 2, True, 5, 3.0),
    ]


def test_partitions_are_written_concurrently() -> None:
    async def scenario() -> None:
        replicas = FakeReplicas()
        replicas.release.clear()
        writer = MarkerWriter(replicas)
        task = asyncio.create_task(
            writer.write(tpb.WriteTxnMarkersRequest(markers=[marker({"events": [0, 1, 2]})]))
        )
        # All three wait for replication at once (none waits for another to finish).
        while replicas.started < 3:
            assert not task.done()
            await asyncio.sleep(0)
        replicas.release.set()
        response = await task
        assert codes(response) == [[("events", p, "NONE") for p in (0, 1, 2)]]

    run(scenario())


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NotEnoughReplicasError("isr too small"), "NOT_ENOUGH_REPLICAS"),
        (RequestTimedOutError("slow"), "REQUEST_TIMED_OUT"),
        (InvalidProducerEpochError("old epoch"), "INVALID_PRODUCER_EPOCH"),
        (TransactionCoordinatorFencedError("old coordinator"), "TRANSACTION_COORDINATOR_FENCED"),
        (LogClosedError("closed"), "KAFKA_STORAGE_ERROR"),
        # Leadership moved between the lookup and the append: the coordinator looks again.
        (StaleLeaderEpochError("epoch 3 < 4"), "NOT_LEADER_OR_FOLLOWER"),
    ],
)
def test_a_partition_error_is_answered_for_that_partition_only(
    error: RaftkaError, code: str
) -> None:
    replicas = FakeReplicas()
    replicas.failures[("events", 1)] = error
    response = run(
        MarkerWriter(replicas).write(
            tpb.WriteTxnMarkersRequest(markers=[marker({"events": [0, 1]})])
        )
    )
    assert codes(response) == [[("events", 0, "NONE"), ("events", 1, code)]]
    assert response.markers[0].partitions[1].error_message == error.message
    assert [w[:2] for w in replicas.written] == [("events", 0)]


def test_unknown_and_not_led_partitions() -> None:
    replicas = FakeReplicas()
    replicas.not_led.add(("events", 3))
    response = run(
        MarkerWriter(replicas).write(
            tpb.WriteTxnMarkersRequest(markers=[marker({"events": [3, 4], "nope": [0]})])
        )
    )
    assert codes(response) == [
        [
            ("events", 3, "NOT_LEADER_OR_FOLLOWER"),
            ("events", 4, "NONE"),
            ("nope", 0, "UNKNOWN_TOPIC_OR_PARTITION"),
        ]
    ]


def test_request_bounds() -> None:
    writer = MarkerWriter(FakeReplicas())
    with pytest.raises(InvalidRequestError, match="empty"):
        run(writer.write(tpb.WriteTxnMarkersRequest()))
    # 10,001 partitions in all, over two markers.
    too_many = tpb.WriteTxnMarkersRequest(
        markers=[marker({"events": list(range(5000))}), marker({"events": list(range(5001))})]
    )
    with pytest.raises(InvalidRequestError, match="at most 10000"):
        run(writer.write(too_many))
    with pytest.raises(InvalidRequestError, match="more than once"):
        run(writer.write(tpb.WriteTxnMarkersRequest(markers=[marker({"events": [1, 1]})])))
    with pytest.raises(InvalidRequestError, match="producer_epoch"):
        run(writer.write(tpb.WriteTxnMarkersRequest(markers=[marker({"events": [1]}, epoch=-1)])))


def test_offsets_partitions_go_to_the_group_hook() -> None:
    replicas = FakeReplicas()
    calls: list[tuple[int, int, int, bool, int]] = []

    async def group_marker(
        partition: int, producer_id: int, epoch: int, committed: bool, coordinator_epoch: int
    ) -> None:
        if partition == 4:
            raise NotCoordinatorError("group coordinator of partition 4 is loading elsewhere")
        calls.append((partition, producer_id, epoch, committed, coordinator_epoch))

    writer = MarkerWriter(replicas, group_marker=group_marker)
    request = tpb.WriteTxnMarkersRequest(
        markers=[marker({"__consumer_offsets": [3, 4], "events": [0]}, committed=False)]
    )
    response = run(writer.write(request))
    assert codes(response) == [
        [
            ("__consumer_offsets", 3, "NONE"),
            ("__consumer_offsets", 4, "NOT_LEADER_OR_FOLLOWER"),
            ("events", 0, "NONE"),
        ]
    ]
    assert calls == [(3, 7, 2, False, 5)]
    assert [w[:2] for w in replicas.written] == [("events", 0)]


def test_without_a_group_hook_offsets_partitions_get_the_marker_directly() -> None:
    replicas = FakeReplicas()
    run(
        MarkerWriter(replicas).write(
            tpb.WriteTxnMarkersRequest(markers=[marker({"__consumer_offsets": [3]})])
        )
    )
    assert [w[:2] for w in replicas.written] == [("__consumer_offsets", 3)]
