"""The marker sender's rules: one request per leader per round, retries with the leader
resolved again, stop when superseded, partitions of deleted topics dropped."""

from __future__ import annotations

import asyncio

from raftka.broker.transactions.api import MarkerJob, TopicPartition
from raftka.broker.transactions.marker_sender import MarkerOutcome, MarkerSender
from raftka.common.errors import NetworkError
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

JOB = MarkerJob(
    "t1",
    producer_id=7,
    producer_epoch=3,
    committed=True,
    coordinator_epoch=4,
    partitions=frozenset({("a", 0), ("a", 1), ("b", 0)}),
)


class Cluster:
    """Leaders per partition and scripted answers: ``answers[(broker, tp)]`` is a list of codes
    consumed one per request (NONE once exhausted); ``down`` brokers raise a transport error."""

    def __init__(self, leaders: dict[TopicPartition, int | None]) -> None:
        self.leaders = leaders
        self.answers: dict[tuple[int, TopicPartition], list[int]] = {}
        self.down: set[int] = set()
        self.requests: list[tuple[int, list[TopicPartition]]] = []
        self.sleeps: list[float] = []
        self.on_sleep: list[dict[TopicPartition, int | None]] = []

    def marker_leader(self, topic: str, partition: int) -> int | None:
        return self.leaders.get((topic, partition))

    async def write_markers(
        self, broker_id: int, request: tpb.WriteTxnMarkersRequest
    ) -> tpb.WriteTxnMarkersResponse:
        (marker,) = request.markers
        assert (marker.producer_id, marker.producer_epoch, marker.coordinator_epoch) == (7, 3, 4)
        assert marker.committed
        tps = [(t.topic, p) for t in marker.topics for p in t.partitions]
        self.requests.append((broker_id, tps))
        if broker_id in self.down:
            raise NetworkError(f"broker {broker_id} is unreachable")
        result = tpb.TxnMarkerResult(producer_id=marker.producer_id)
        for tp in tps:
            codes = self.answers.get((broker_id, tp), [])
            code = codes.pop(0) if codes else ErrorCode.NONE
            result.partitions.add(topic=tp[0], partition=tp[1], error_code=code)
        return tpb.WriteTxnMarkersResponse(markers=[result])

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep:
            self.leaders.update(self.on_sleep.pop(0))


def send(cluster: Cluster, job: MarkerJob = JOB) -> MarkerOutcome:
    sender = MarkerSender(
        cluster, cluster, initial_backoff_s=0.1, max_backoff_s=0.3, sleep=cluster.sleep
    )
    return asyncio.run(asyncio.wait_for(sender.send(job), 5))


def test_one_request_per_leader_and_done_when_all_answer_none() -> None:
    cluster = Cluster({("a", 0): 1, ("a", 1): 2, ("b", 0): 1})
    assert send(cluster) is MarkerOutcome.WRITTEN
    assert sorted(cluster.requests) == [(1, [("a", 0), ("b", 0)]), (2, [("a", 1)])]
    assert cluster.sleeps == []


def test_retriable_answers_are_retried_at_the_new_leader_with_growing_backoff() -> None:
    cluster = Cluster({("a", 0): 1, ("a", 1): 1, ("b", 0): 1})
    cluster.answers[(1, ("a", 1))] = [ErrorCode.NOT_LEADER_OR_FOLLOWER]
    cluster.answers[(1, ("b", 0))] = [ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.REQUEST_TIMED_OUT]
    cluster.answers[(3, ("b", 0))] = [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    # After the first round a-1 has moved to broker 2; after the second b-0 to broker 3.
    cluster.on_sleep = [{("a", 1): 2}, {("b", 0): 3}, {}]
    assert send(cluster) is MarkerOutcome.WRITTEN
    assert cluster.requests == [
        (1, [("a", 0), ("a", 1), ("b", 0)]),
        (2, [("a", 1)]),  # round 2: each partition at its leader now
        (1, [("b", 0)]),
        (3, [("b", 0)]),  # UNKNOWN_TOPIC_OR_PARTITION at a new leader: retried too
        (3, [("b", 0)]),
    ]
    assert cluster.sleeps == [0.1, 0.2, 0.3]  # doubled, capped


def test_transport_errors_and_leaderless_partitions_are_retried() -> None:
    cluster = Cluster({("a", 0): 1, ("a", 1): -1, ("b", 0): 2})
    cluster.down = {2}
    cluster.on_sleep = [{("a", 1): 1, ("b", 0): 1}]
    assert send(cluster) is MarkerOutcome.WRITTEN
    sent = [tp for _, tps in cluster.requests for tp in tps]
    assert sent.count(("a", 1)) == 1  # never sent while it had no leader
    assert (2, [("b", 0)]) in cluster.requests and cluster.requests[-1] == (
        1,
        [("a", 1), ("b", 0)],
    )


def test_a_superseding_answer_stops_the_job() -> None:
    for code in (ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.TRANSACTION_COORDINATOR_FENCED):
        cluster = Cluster({("a", 0): 1, ("a", 1): 1, ("b", 0): 2})
        cluster.answers[(1, ("a", 1))] = [code]
        cluster.answers[(2, ("b", 0))] = [ErrorCode.NOT_LEADER_OR_FOLLOWER]
        assert send(cluster) is MarkerOutcome.SUPERSEDED
        assert len(cluster.requests) == 2 and cluster.sleeps == []  # no further round


def test_partitions_of_deleted_topics_are_dropped() -> None:
    cluster = Cluster({("a", 0): 1, ("a", 1): None, ("b", 0): None})
    assert send(cluster) is MarkerOutcome.WRITTEN
    assert cluster.requests == [(1, [("a", 0)])]
    gone = Cluster({})
    assert send(gone) is MarkerOutcome.WRITTEN and gone.requests == []
