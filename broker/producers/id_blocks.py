"""Producer ids for InitProducerId, handed out from blocks the active controller allocates
(AllocateProducerIds, KIP-730: blocks of 1000, recorded in the metadata log, so no two
blocks overlap, across brokers and controller failovers).

The broker asks for a block when it has none left. Concurrent callers that find the block
exhausted wait on one shared request; the request runs as its own task, so a caller that
gives up (its RPC was cancelled) does not cancel it for the others. A failed request fails
every caller waiting on it with CoordinatorLoadInProgressError (retriable); the next call
asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

import structlog

from raftka.common.errors import CoordinatorLoadInProgressError, RaftkaError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ProducerIdBlock:
    """The ids [first, first + count)."""

    first: int
    count: int


BlockSource = Callable[[], Awaitable[ProducerIdBlock]]
"""Asks the active controller for a new block (raises RaftkaError on failure)."""


class ProducerIdManager:
    """Hands out producer ids from the current block, fetching the next block when it runs
    out. Event-loop only (not thread-safe)."""

    def __init__(self, source: BlockSource, *, broker_id: int) -> None:
        self._source = source
        self._broker_id = broker_id
        self._next = 0
        self._end = 0  # the current block is [_next, _end)
        self._fetching: asyncio.Task[ProducerIdBlock] | None = None

    @property
    def remaining(self) -> int:
        """Ids left in the current block."""
        return self._end - self._next

    @property
    def fetching(self) -> bool:
        """Whether a block request is in flight."""
        return self._fetching is not None

    async def next_id(self) -> int:
        """A producer id no other call (on any broker) gets."""
        while self._next >= self._end:
            task = self._fetching
            if task is None:
                task = self._fetching = asyncio.ensure_future(self._fetch())
                task.add_done_callback(self._on_fetched)
            elif task.done():  # finished, but its callback has not run yet
                self._on_fetched(task)
                continue
            # Shielded: a caller that gives up does not cancel the request for the others.
            await asyncio.shield(task)
            self._on_fetched(task)
        producer_id = self._next
        self._next += 1
        return producer_id

    def _on_fetched(self, task: asyncio.Task[ProducerIdBlock]) -> None:
        """Installs the block of a finished request (once: later calls find it installed) and
        forgets the request. Also a done callback, so that neither a block nobody waits for
        any more is lost nor a failure left unretrieved (every waiter gets it)."""
        if self._fetching is task:
            self._fetching = None
        if task.cancelled() or task.exception() is not None:
            return
        block = task.result()
        if self._next >= self._end and block.first >= self._end:
            self._next, self._end = block.first, block.first + block.count

    async def close(self) -> None:
        """Cancels a block request in flight."""
        task, self._fetching = self._fetching, None
        if task is not None and not task.done():
            task.cancel()
            with suppress(asyncio.CancelledError, RaftkaError):
                await task

    async def _fetch(self) -> ProducerIdBlock:
        try:
            block = await self._source()
        except RaftkaError as exc:
            log.warning(
                "producer_id_block_request_failed", broker_id=self._broker_id, error=exc.message
            )
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} has no producer ids left and could not get a new "
                f"block from the controller ({exc.code_name}: {exc.message}); retry"
            ) from exc
        if block.first < 0 or block.count <= 0:
            raise CoordinatorLoadInProgressError(
                f"broker {self._broker_id} got an invalid producer id block "
                f"[{block.first}, {block.first + block.count}) from the controller; retry"
            )
        log.info(
            "producer_ids_allocated",
            broker_id=self._broker_id,
            first_producer_id=block.first,
            count=block.count,
        )
        return block
