"""MetadataFollower, driven in-process by a fake ControllerClient whose WatchMetadata streams
are scripted (no gRPC, no processes): deltas applied in order, a snapshot-first stream, a
resume after a broken stream from the last index with nothing applied twice, and an
out-of-order stream refused (logged, reconnected to the next controller)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar, cast

import pytest
import structlog

from raftka.broker.metadata_changes import MetadataChanges
from raftka.broker.metadata_follower import MetadataFollower
from raftka.common.errors import RaftkaError
from raftka.common.ids import BrokerEpoch, BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import BrokerEndpoint, BrokerRegistration
from raftka.common.metadata.records import register_broker_record
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import controller_pb2 as pb
from raftka.v1.metadata_pb2 import MetadataBatch, MetadataRecord
from tests.conditions import until

_T = TypeVar("_T")


def broker(broker_id: int, epoch: int = 1) -> MetadataRecord:
    return register_broker_record(
        BrokerRegistration(
            broker_id=BrokerId(broker_id),
            epoch=BrokerEpoch(epoch),
            incarnation_id=f"inc-{broker_id}-{epoch}",
            endpoints=(BrokerEndpoint("CLIENT", "127.0.0.1", 9000 + broker_id),),
            fenced=False,
        )
    )


def delta(index: int, *records: MetadataRecord) -> pb.MetadataEvent:
    return pb.MetadataEvent(delta=pb.MetadataDelta(index=index, records=records))


def progress(index: int) -> pb.MetadataEvent:
    return pb.MetadataEvent(progress=pb.Progress(commit_index=index))


def chunk(
    last_index: int, *records: MetadataRecord, first: bool = False, last: bool = False
) -> pb.MetadataEvent:
    return pb.MetadataEvent(
        snapshot=pb.SnapshotChunk(last_index=last_index, records=records, first=first, last=last)
    )


class BrokenStream(RaftkaError):
    """What a stream raises when its controller goes away (the client's error mapping)."""


class FakeStream:
    """A WatchMetadata call: yields its events, then raises ``end`` (a broken stream) or, with
    ``end`` None, stays open until cancelled."""

    def __init__(self, events: Sequence[pb.MetadataEvent], end: BaseException | None) -> None:
        self.events = list(events)
        self.end = end
        self.cancelled = False
        self._closed = asyncio.Event()

    def __aiter__(self) -> AsyncIterator[pb.MetadataEvent]:
        return self._run()

    async def _run(self) -> AsyncIterator[pb.MetadataEvent]:
        for event in self.events:
            await asyncio.sleep(0)
            yield event
        if self.end is not None:
            raise self.end
        await self._closed.wait()

    def cancel(self) -> None:
        self.cancelled = True
        self._closed.set()


Script = Callable[[int], tuple[Sequence[pb.MetadataEvent], BaseException | None]]
"""Given the after_index a stream is opened with: its events, and how it ends."""


class FakeController:
    """Stands in for ControllerClient.watch_metadata: the n-th call gets the n-th script (the
    last one again after that), and every call's (after_index, attempt) is kept."""

    def __init__(self, *scripts: Script) -> None:
        self.scripts = list(scripts)
        self.calls: list[tuple[int, int]] = []
        self.streams: list[FakeStream] = []

    def watch_metadata(self, after_index: int, attempt: int = 0) -> FakeStream:
        self.calls.append((after_index, attempt))
        script = self.scripts[min(len(self.calls), len(self.scripts)) - 1]
        stream = FakeStream(*script(after_index))
        self.streams.append(stream)
        return stream


def serving(
    entries: dict[int, Sequence[MetadataRecord]], end: BaseException | None = None
) -> Script:
    """A well-behaved controller: the deltas of ``entries`` after the requested index, in
    order (entries without records, e.g. a Raft NOOP, are not sent)."""

    def script(after_index: int) -> tuple[Sequence[pb.MetadataEvent], BaseException | None]:
        return [delta(i, *r) for i, r in sorted(entries.items()) if i > after_index], end

    return script


def fixed(*events: pb.MetadataEvent, end: BaseException | None = None) -> Script:
    return lambda _after_index: (events, end)


class Applied:
    """Every index a batch is applied to any image at (MetadataImage.apply_batch)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.indexes: list[int] = []
        original = MetadataImage.apply_batch

        def apply_batch(image: MetadataImage, batch: MetadataBatch, index: int) -> None:
            self.indexes.append(index)
            original(image, batch, index)

        monkeypatch.setattr(MetadataImage, "apply_batch", apply_batch)


async def follow(
    controller: FakeController,
    done: Callable[[MetadataFollower], bool],
    *,
    what: str,
) -> tuple[MetadataFollower, list[int]]:
    """Runs a follower on ``controller`` until ``done(follower)``; then stops it. Returns it
    and its index at each call of its listeners."""
    follower = MetadataFollower(cast(ControllerClient, controller), retry_interval_s=0.001)
    changes: list[int] = []
    follower.add_listener(lambda: changes.append(follower.index))
    task = asyncio.create_task(follower.run())
    try:
        await until(lambda: done(follower) or task.done(), timeout_s=5, what=what)
        if task.done():
            task.result()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return follower, changes


def brokers_of(follower: MetadataFollower) -> dict[int, int]:
    """{broker id: epoch} in the follower's image."""
    found: dict[int, int] = {}
    for b in range(10):
        reg = follower.image.broker(BrokerId(b))
        if reg is not None:
            found[b] = int(reg.epoch)
    return found


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_deltas_are_applied_in_order_and_progress_advances_the_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied = Applied(monkeypatch)
    controller = FakeController(
        fixed(
            delta(1, broker(1)),
            delta(2, broker(2)),
            delta(3, broker(1, epoch=3)),  # replaces the registration of delta 1
            progress(5),  # 4 and 5 carried no records
            delta(6, broker(3)),
        )
    )
    follower, changes = run(follow(controller, lambda f: f.index >= 6, what="index 6"))
    assert applied.indexes == [1, 2, 3, 6]
    assert brokers_of(follower) == {1: 3, 2: 1, 3: 1}
    assert follower.image.last_applied_index == 6
    assert changes == [1, 2, 3, 5, 6], "listeners run after every change"
    assert controller.calls == [(0, 0)], "one stream, never broken"


def test_a_snapshot_first_stream_replaces_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    """The follower had index 1 (broker 9) when its stream broke; the next controller no longer
    holds the entries after it and starts with a snapshot at 10 (in two chunks) that has no
    broker 9: the image is the snapshot's, then deltas continue after it."""
    applied = Applied(monkeypatch)
    controller = FakeController(
        fixed(delta(1, broker(9)), end=BrokenStream("controller went away")),
        fixed(
            chunk(10, broker(1), broker(2), first=True),
            chunk(10, broker(3), last=True),
            delta(11, broker(4)),
        ),
    )
    follower, _ = run(follow(controller, lambda f: f.index >= 11, what="index 11"))
    assert controller.calls == [(0, 0), (1, 1)]
    assert brokers_of(follower) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert follower.image.last_applied_index == 11
    assert applied.indexes == [1, 11], "the snapshot is loaded, not replayed as deltas"


def test_a_broken_stream_resumes_from_the_last_index_and_applies_nothing_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied = Applied(monkeypatch)
    entries: dict[int, Sequence[MetadataRecord]] = {
        1: [broker(1)],
        2: [broker(2)],
        4: [broker(3)],
        5: [broker(4)],
    }
    broken = BrokenStream("UNAVAILABLE: controller restarting")
    controller = FakeController(
        fixed(delta(1, broker(1)), delta(2, broker(2)), progress(3), end=broken),
        fixed(end=broken),  # the next controller is down too
        serving(entries),
    )
    follower, _ = run(follow(controller, lambda f: f.index >= 5, what="index 5"))
    # Each reconnect asks from the last index seen (3, from the progress event) and walks
    # on to the next controller while streams keep breaking.
    assert controller.calls == [(0, 0), (3, 1), (3, 2)]
    assert applied.indexes == [1, 2, 4, 5]
    assert brokers_of(follower) == {1: 1, 2: 1, 3: 1, 4: 1}
    assert all(s.cancelled for s in controller.streams[:2])


@pytest.mark.parametrize(
    ("bad", "why", "resume_at"),
    [
        ((delta(1, broker(1)), delta(3, broker(3)), delta(2, broker(2))), "already has", 3),
        ((delta(1, broker(1)), delta(3, broker(3)), delta(3, broker(2))), "already has", 3),
        ((delta(1, broker(1)), progress(3), delta(2, broker(2))), "already has", 3),
        (
            (delta(1, broker(1)), chunk(3, broker(1), first=True), delta(2, broker(2))),
            "middle of a snapshot",
            1,
        ),
        ((delta(1, broker(1)), chunk(3, broker(2), last=True)), "without its first", 1),
    ],
    ids=["older-delta", "repeated-delta", "delta-below-progress", "delta-in-snapshot", "no-first"],
)
def test_an_out_of_order_stream_is_refused_logged_and_left_for_the_next_controller(
    monkeypatch: pytest.MonkeyPatch, bad: tuple[pb.MetadataEvent, ...], why: str, resume_at: int
) -> None:
    applied = Applied(monkeypatch)
    controller = FakeController(
        fixed(*bad),  # stays open: the follower must leave it on its own
        serving({4: [broker(4)]}),
    )
    with structlog.testing.capture_logs() as logs:
        follower, _ = run(follow(controller, lambda f: f.index >= 4, what="index 4"))
    refused = [e for e in logs if e["event"] == "metadata_stream_out_of_order"]
    assert len(refused) == 1 and why in refused[0]["error"], logs
    assert controller.streams[0].cancelled, "the refused stream is closed"
    assert controller.calls[1] == (resume_at, 1), "from its last index, the next controller"
    assert 2 not in applied.indexes, "nothing of the refused event is applied"
    assert applied.indexes == sorted(set(applied.indexes)), "in order, none twice"
    assert applied.indexes[-1] == 4
    assert 2 not in brokers_of(follower)


def test_progress_without_records_wakes_no_listener() -> None:
    """A Progress every second must not make the replica manager look at every partition:
    only the first (caught up) and the deltas wake the listeners; take_changes hands over what
    changed once (MetadataChanges itself is tested in test_metadata_changes.py)."""
    controller = FakeController(
        fixed(
            delta(1, broker(1)),
            progress(2),
            progress(3),
            progress(4),
            delta(5, broker(2)),
        )
    )

    async def main() -> tuple[list[int], MetadataChanges, MetadataChanges]:
        follower, changes = await follow(controller, lambda f: f.index >= 5, what="index 5")
        return changes, follower.take_changes(), follower.take_changes()

    listened, first, second = run(main())
    assert listened == [1, 2, 5]
    assert first.everything  # brokers registered (and nothing was taken before)
    assert not second
