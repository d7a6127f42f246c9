"""Committed offsets at the group coordinator (OffsetCommit / OffsetFetch), and auto-commit.

:class:`GroupOffsetStore` is the consumer's :class:`OffsetStore` when it has a ``group_id``.
Each request names the member (its id and current epoch) while the consumer is a member of
the group, else member epoch -1: a "simple" group, for consumers that ``assign()``.

:class:`AutoCommitter` commits what poll() has handed out every ``auto_commit_interval_ms``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping

import structlog

from raftka.client.consumer.errors import CommitFailedError
from raftka.client.group_coordinator import (
    GroupCoordinator,
    commit_request,
    committed_offsets,
    fetch_request,
    partition_errors,
)
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import group_errors
from raftka.common.errors import RaftkaError
from raftka.common.rpc.retry import Deadline
from raftka.common.tasks import cancel_and_wait
from raftka.common.txn_errors import UnstableOffsetCommitError

log = structlog.get_logger(__name__)

Identity = Callable[[], tuple[str, int]]
"""(member id, member epoch) to send: ("", -1) outside a membership (simple group)."""

MEMBERSHIP_ERRORS = (
    group_errors.UnknownMemberIdError,
    group_errors.StaleMemberEpochError,
    group_errors.FencedMemberEpochError,
)


CommitListener = Callable[[Mapping[TopicPartition, OffsetAndMetadata]], None]
"""Called with what the coordinator acknowledged, after every successful commit."""


class GroupOffsetStore:
    def __init__(
        self, coordinator: GroupCoordinator, identity: Identity, *, require_stable: bool = False
    ) -> None:
        """``require_stable`` (what consumers use, as Kafka's do since KIP-447): offsets a
        transaction is still committing are waited for (UNSTABLE_OFFSET_COMMIT, retried),
        never answered with the value before them."""
        self._coordinator = coordinator
        self._identity = identity
        self._require_stable = require_stable
        self.commit_listeners: list[CommitListener] = []

    @property
    def group_id(self) -> str:
        return self._coordinator.group_id

    def _deadline(self) -> Deadline:
        return Deadline(self._coordinator.request_timeout_s)

    async def fetch_committed(
        self, partitions: Collection[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        if not partitions:
            return {}
        member_id, epoch = self._identity()
        request = fetch_request(
            self.group_id, partitions, member_id, epoch, require_stable=self._require_stable
        )
        timeout = self._coordinator.request_timeout_s

        async def call(address: str) -> dict[TopicPartition, OffsetAndMetadata]:
            response = await self._coordinator.stub(address).OffsetFetch(request, timeout=timeout)
            return committed_offsets(response, self.group_id)

        found = await self._coordinator.call_at(
            call, self._deadline(), retry_here=(UnstableOffsetCommitError,)
        )
        return {tp: o for tp, o in found.items() if tp in partitions}

    async def commit(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        """Commit ``offsets``; raises CommitFailedError when the coordinator no longer takes
        this member's commits, or the first refused partition's error."""
        if not offsets:
            return
        member_id, epoch = self._identity()
        request = commit_request(self.group_id, member_id, epoch, offsets)
        timeout = self._coordinator.request_timeout_s
        try:
            response = await self._coordinator.call(
                lambda stub: stub.OffsetCommit(request, timeout=timeout), self._deadline()
            )
        except MEMBERSHIP_ERRORS as e:
            raise self._commit_failed(e, member_id, epoch) from None
        errors = partition_errors(response.topics)
        if not errors:
            log.debug("consumer_offsets_committed", group=self.group_id, partitions=len(offsets))
            for listener in self.commit_listeners:
                listener(offsets)
            return
        first = next(iter(errors.values()))
        if isinstance(first, MEMBERSHIP_ERRORS):
            raise self._commit_failed(first, member_id, epoch)
        raise first

    def _commit_failed(self, e: RaftkaError, member_id: str, epoch: int) -> CommitFailedError:
        who = (
            f"member {member_id} (epoch {epoch})"
            if member_id
            else "this consumer (no membership: a simple-group commit)"
        )
        return CommitFailedError(
            f"commit to group {self.group_id!r} refused: {who} is not the current owner "
            f"({e.message}). The group has moved on (the member was removed after its session "
            "timeout or max_poll_interval_ms, or a rebalance took the partitions): poll() again "
            "to rejoin; records since the last commit may be delivered again"
        )

    async def close(self) -> None:
        pass


class AutoCommitter:
    """Commits ``processed()`` every ``interval_s`` when it changed since the last commit."""

    def __init__(
        self,
        commit: Callable[[dict[TopicPartition, OffsetAndMetadata]], Awaitable[None]],
        processed: Callable[[], dict[TopicPartition, OffsetAndMetadata]],
        interval_s: float,
    ) -> None:
        self._commit = commit
        self._processed = processed
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self.last: dict[TopicPartition, OffsetAndMetadata] = {}
        """What was last committed (by any path that tells :meth:`committed`)."""

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    def committed(self, offsets: Mapping[TopicPartition, OffsetAndMetadata]) -> None:
        self.last.update(offsets)

    def forget(self, partitions: Collection[TopicPartition]) -> None:
        """The partitions left this consumer: another member may commit them meanwhile, so
        what this one last committed says nothing when they come back."""
        for tp in partitions:
            self.last.pop(tp, None)

    def pending(
        self, only: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The processed positions not committed yet (of ``only`` when given)."""
        return {
            tp: o
            for tp, o in self._processed().items()
            if (only is None or tp in only) and self.last.get(tp) != o
        }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            due = self.pending()
            if not due:
                continue
            try:
                await self._commit(due)
            except RaftkaError as e:
                log.warning("consumer_auto_commit_failed", error=e.message)

    async def close(self) -> None:
        await cancel_and_wait([self._task])
