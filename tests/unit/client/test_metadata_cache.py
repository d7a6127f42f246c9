"""The client's metadata cache: a broker with an older view cannot move a partition's leader
back (KIP-320), brokers are asked in turn, and a recreated topic starts afresh."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from raftka.client.metadata_cache import MetadataCache
from raftka.common.rpc.retry import Deadline
from raftka.common.security_errors import TopicAuthorizationFailedError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode


class Views:
    """Each address answers Metadata with the leader and epoch it believes in."""

    def __init__(self, views: dict[str, tuple[int, int, str]]) -> None:
        self.views = views  # address -> (leader id, leader epoch, topic id)
        self.asked: list[str] = []

    def stub(self, address: str) -> Any:
        views = self

        class Stub:
            async def Metadata(
                self, request: pb.MetadataRequest, **_call: Any
            ) -> pb.MetadataResponse:
                views.asked.append(address)
                leader, epoch, topic_id = views.views[address]
                return pb.MetadataResponse(
                    brokers=[pb.BrokerNode(broker_id=i, host="h", port=i) for i in (1, 2, 3)],
                    topics=[
                        pb.TopicMetadata(
                            name="t",
                            topic_id=topic_id,
                            partitions=[
                                pb.PartitionMetadata(
                                    partition=0, leader_id=leader, leader_epoch=epoch
                                )
                            ],
                        )
                    ],
                )

        return Stub()


def test_an_older_leader_epoch_never_replaces_a_newer_one() -> None:
    views = Views({"h:1": (1, 5, "id-a"), "h:2": (2, 6, "id-a"), "h:3": (1, 5, "id-a")})
    cache = MetadataCache(["h:2"], views)  # type: ignore[arg-type]

    async def main() -> None:
        await cache.refresh(["t"])
        assert cache.leader_address("t", 0) == "h:2"
        for _ in range(6):  # every broker gets asked, the stale ones too
            await cache.refresh(["t"])
            assert cache.leader_address("t", 0) == "h:2", "a stale view moved the leader back"
        assert {"h:1", "h:3"} <= set(views.asked), "brokers are asked in turn"
        # The topic was deleted and recreated: its epochs start again.
        views.views = {a: (3, 0, "id-b") for a in views.views}
        await cache.refresh(["t"])
        assert cache.leader_address("t", 0) == "h:3"

    asyncio.run(main())


def test_a_broker_that_did_not_answer_is_asked_last() -> None:
    views = Views({"h:1": (1, 5, "id-a"), "h:2": (1, 5, "id-a"), "h:3": (1, 5, "id-a")})
    cache = MetadataCache(["h:1"], views)  # type: ignore[arg-type]

    async def main() -> None:
        await cache.refresh(["t"])
        cache.note_unreachable("h:2")
        cache.note_unreachable("h:3")
        for _ in range(4):
            views.asked.clear()
            await cache.refresh(["t"])
            assert views.asked == ["h:1"], "the brokers that answered nothing come last"

    asyncio.run(main())


class Refusing:
    """Brokers that refuse to describe topic "secret" (no DESCRIBE ACL for the caller)."""

    def __init__(self) -> None:
        self.granted = False

    def stub(self, _address: str) -> Any:
        refusing = self

        class Stub:
            async def Metadata(
                self, request: pb.MetadataRequest, **_call: Any
            ) -> pb.MetadataResponse:
                topic = pb.TopicMetadata(
                    name="secret", error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED
                )
                if refusing.granted:
                    topic = pb.TopicMetadata(
                        name="secret",
                        topic_id="id-s",
                        partitions=[pb.PartitionMetadata(partition=0, leader_id=1)],
                    )
                return pb.MetadataResponse(
                    brokers=[pb.BrokerNode(broker_id=1, host="h", port=1)], topics=[topic]
                )

        return Stub()


def test_a_topic_the_brokers_refuse_to_describe_raises_their_error_at_once() -> None:
    """Not a topic with no partitions (a producer would have nowhere to send): the
    authorization error, without waiting for the deadline; a later grant is seen."""
    brokers = Refusing()
    cache = MetadataCache(["h:1"], brokers)  # type: ignore[arg-type]

    async def main() -> None:
        with pytest.raises(TopicAuthorizationFailedError, match="DESCRIBE"):
            await cache.topic("secret", Deadline(60.0))
        assert "secret" not in cache.topics and cache.partition_count("secret") is None
        brokers.granted = True
        await cache.refresh()
        info = await cache.topic("secret", Deadline(1.0))
        assert [p.leader_id for p in info.partitions] == [1]
        assert "secret" not in cache.refused

    asyncio.run(asyncio.wait_for(main(), 10))
