"""ControllerClient.create_topics: a create retried after a lost answer that finds a topic of
the shape asked for reports it created; any other TOPIC_ALREADY_EXISTS stays an error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb


class _Stub:
    def __init__(self, response: pb.CreateTopicsResponse) -> None:
        self.response = response

    async def CreateTopics(self, request: Any, **_: Any) -> pb.CreateTopicsResponse:
        return self.response


class _Client(ControllerClient):
    """Calls each invoke ``attempts`` times (as the retry loop does after a lost answer) and
    answers DescribeTopics with ``existing``."""

    def __init__(self, attempts: int, existing: Sequence[pb.TopicDescription]) -> None:
        super().__init__(["127.0.0.1:1"])
        self.attempts = attempts
        self.existing = list(existing)
        self.response = pb.CreateTopicsResponse()

    async def call(self, invoke: Callable[[Any, float], Awaitable[Any]], **_: Any) -> Any:
        result = None
        for _attempt in range(self.attempts):
            result = await invoke(_Stub(self.response), 1.0)
        return result

    async def describe_topics(self, names: Sequence[str] = ()) -> list[pb.TopicDescription]:
        return [d for d in self.existing if d.name in names]


def _topic(name: str, partitions: int, rf: int) -> pb.TopicDescription:
    return pb.TopicDescription(
        name=name,
        topic_id="T" * 22,
        partitions=[
            pb.PartitionDescription(partition=i, replicas=list(range(rf)))
            for i in range(partitions)
        ],
    )


def _exists(name: str) -> pb.CreateTopicResult:
    return pb.CreateTopicResult(name=name, error_code=cpb.TOPIC_ALREADY_EXISTS)


def _create(client: _Client, *topics: pb.NewTopic) -> list[pb.CreateTopicResult]:
    client.response = pb.CreateTopicsResponse(results=[_exists(t.name) for t in topics])
    return asyncio.run(client.create_topics(topics))


def test_a_retry_that_finds_the_topic_it_asked_for_reports_it_created() -> None:
    client = _Client(attempts=2, existing=[_topic("a", 3, 2), _topic("b", 1, 1)])
    a, b = _create(
        client,
        pb.NewTopic(name="a", num_partitions=3, replication_factor=2),
        pb.NewTopic(name="b"),  # defaults: any shape
    )
    assert (a.error_code, a.topic_id, a.num_partitions, a.replication_factor) == (
        cpb.NONE,
        "T" * 22,
        3,
        2,
    )
    assert b.error_code == cpb.NONE


def test_a_topic_of_another_shape_or_a_first_attempt_stays_an_error() -> None:
    other_shape = _Client(attempts=2, existing=[_topic("a", 5, 2)])
    (a,) = _create(other_shape, pb.NewTopic(name="a", num_partitions=3, replication_factor=2))
    assert a.error_code == cpb.TOPIC_ALREADY_EXISTS
    first_try = _Client(attempts=1, existing=[_topic("a", 3, 2)])
    (a,) = _create(first_try, pb.NewTopic(name="a", num_partitions=3, replication_factor=2))
    assert a.error_code == cpb.TOPIC_ALREADY_EXISTS
