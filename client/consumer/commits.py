"""Committing the consumer's offsets to its group: explicit commits (waited for or not),
what a commit means when no offsets are named (the current positions), the commit listeners,
and the commit_async() calls close() lets finish."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping

import structlog

from raftka.client.consumer.errors import GroupRequiredError, IllegalStateError
from raftka.client.consumer.group_offsets import AutoCommitter, CommitListener, GroupOffsetStore
from raftka.client.consumer.offset_store import OffsetAndMetadata, OffsetStore
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

CommitCallback = Callable[[dict[TopicPartition, OffsetAndMetadata], RaftkaError | None], None]


class ConsumerCommits:
    """Commits through ``offset_store`` (None: the consumer has no group, and every commit
    says so); ``positions()`` gives what "everything poll() returned" is now."""

    def __init__(
        self,
        offset_store: OffsetStore | None,
        positions: Callable[[], dict[TopicPartition, OffsetAndMetadata]],
    ) -> None:
        self.offset_store = offset_store
        self.auto_commit: AutoCommitter | None = None
        """Told of every commit (so it does not commit the same offsets again)."""
        self._positions = positions
        self.tasks: set[asyncio.Task[None]] = set()
        """commit_async() calls (and other background work close() waits for)."""

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None
    ) -> None:
        await self.commit_offsets(self._to_commit(offsets))

    def commit_async(
        self,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None,
        callback: CommitCallback | None,
    ) -> asyncio.Task[None]:
        to_commit = self._to_commit(offsets)

        async def run() -> None:
            error: RaftkaError | None = None
            try:
                await self.commit_offsets(to_commit)
            except RaftkaError as e:
                error = e
                if callback is None:
                    log.warning("consumer_commit_async_failed", error=e.message)
            if callback is not None:
                callback(dict(to_commit), error)

        return self.track(asyncio.ensure_future(run()))

    def track(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """Keep ``task`` until it is done (close() lets it finish)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def _to_commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        if self.offset_store is None:
            raise GroupRequiredError(
                "commit() needs a consumer group: set group_id (committed offsets live in a "
                "group; with assign() it is a memberless 'simple' group)"
            )
        if offsets is None:
            return self._positions()
        out: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, o in offsets.items():
            if isinstance(o, OffsetAndMetadata):
                out[TopicPartition(*tp)] = o
            elif isinstance(o, bool) or not isinstance(o, int) or o < 0:
                raise IllegalStateError(f"commit(): {tp} offset {o!r} must be an integer >= 0")
            else:
                out[TopicPartition(*tp)] = OffsetAndMetadata(o)
        return out

    async def commit_offsets(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert self.offset_store is not None
        await self.offset_store.commit(offsets)
        if self.auto_commit is not None:
            self.auto_commit.committed(offsets)

    async def committed(self, tp: TopicPartition) -> OffsetAndMetadata | None:
        if self.offset_store is None:
            raise GroupRequiredError("committed() needs a consumer group: set group_id")
        tp = TopicPartition(*tp)
        return (await self.offset_store.fetch_committed([tp])).get(tp)

    def add_listener(self, listener: CommitListener) -> None:
        if not isinstance(self.offset_store, GroupOffsetStore):
            raise GroupRequiredError("add_commit_listener() needs a consumer group: set group_id")
        self.offset_store.commit_listeners.append(listener)

    async def finish(self, timeout_s: float) -> None:
        """Let the commit_async() calls in flight finish (up to ``timeout_s``, as Kafka's
        close does), then cancel what is left."""
        if self.tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await asyncio.gather(*self.tasks, return_exceptions=True)
        await cancel_and_wait(list(self.tasks))
