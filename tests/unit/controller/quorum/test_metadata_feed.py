"""WatchMetadata's feed never skips a delta committed while a watcher is suspended."""

from __future__ import annotations

import asyncio

from raftka.common.ids import Index, Term
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.raft.types import Entry, EntryKind
from raftka.v1 import metadata_pb2 as mpb


def topic_entry(index: int) -> Entry:
    record = mpb.MetadataRecord(topic=mpb.TopicRecord(name=f"t{index}", topic_id=f"id{index:020d}"))
    data = mpb.MetadataBatch(records=[record]).SerializeToString()
    return Entry(Index(index), Term(1), EntryKind.NORMAL, data)


def test_deltas_committed_during_a_yield_are_still_sent() -> None:
    async def main() -> list[int]:
        sm = MetadataStateMachine()
        sm.apply(topic_entry(1))
        stream = sm.watch(0)
        seen: list[int] = []
        first = await anext(stream)
        seen.append(first.delta.index)
        # While the watcher is suspended after its first delta, two more entries commit.
        sm.apply(topic_entry(2))
        sm.apply(topic_entry(3))
        sm.note_progress(Index(4))  # and a NOOP
        for _ in range(2):
            event = await asyncio.wait_for(anext(stream), 5)
            seen.append(event.delta.index)
        await stream.aclose()
        return seen

    assert asyncio.run(main()) == [1, 2, 3]
