"""The client's metadata cache: a broker with an older view cannot move a partition's leader
back (KIP-320), brokers are asked in turn, and a recreated topic starts afresh."""

from __future__ import annotations

import asyncio
from typing import Any

from raftka.client.metadata_cache import MetadataCache
from raftka.v1 import broker_pb2 as pb


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
