"""Follows the controllers' committed metadata log into a local metadata image.

The stream (WatchMetadata) starts with a snapshot when this follower is new or too far behind,
then carries one delta per committed entry; any controller serves it, so the follower moves to
another when its stream breaks, asking from the last index it has (so nothing is applied
twice). Listeners run after every change, on the event loop.

A stream that breaks its order (a delta at or below an index this follower already has, a
delta in the middle of a snapshot, a snapshot chunk without its first) is not trusted: nothing
more of it is applied, ``metadata_stream_out_of_order`` is logged, and the follower reconnects
(to the next controller) from its last index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog

from raftka.broker.metadata_changes import MetadataChanges
from raftka.common.errors import RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import metadata_pb2 as mpb

log = structlog.get_logger(__name__)


class MetadataStreamOrderError(RaftkaError):
    """The WatchMetadata stream broke its order: nothing more of it is applied."""


class MetadataFollower:
    def __init__(self, client: ControllerClient, retry_interval_s: float = 0.2) -> None:
        self._client = client
        self._retry_interval_s = retry_interval_s
        self.image = MetadataImage()
        self.caught_up = False
        """True once the image has held everything committed at some point (it only moves
        forward from there)."""
        self.index = 0
        """The highest committed metadata index this follower has seen (deltas and NOOPs)."""
        self._listeners: list[Callable[[], None]] = []
        self._advanced = asyncio.Event()
        self._pending: MetadataImage | None = None
        self._changes = MetadataChanges(everything=True)

    def take_changes(self) -> MetadataChanges:
        """The partitions changed since the last call (everything at first)."""
        changes, self._changes = self._changes, MetadataChanges()
        return changes

    def put_back(self, changes: MetadataChanges) -> None:
        """Changes taken but not acted on (they are taken again with the next ones)."""
        self._changes.merge(changes)

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def wait_for_index(self, index: int) -> None:
        while self.index < index:
            event = self._advanced
            await event.wait()

    async def run(self) -> None:
        attempt = 0
        while True:
            self._pending = None  # a snapshot cut off with its stream is never finished
            stream = self._client.watch_metadata(self.index, attempt)
            try:
                async for event in stream:
                    self._handle(event)
                    attempt = 0
            except MetadataStreamOrderError as e:
                attempt += 1  # the next controller
                log.warning("metadata_stream_out_of_order", error=e.message, index=self.index)
            except (grpc.aio.AioRpcError, RaftkaError) as e:
                attempt += 1
                if attempt == 1:
                    log.info("metadata_stream_broken", error=str(e)[:200], index=self.index)
            finally:
                cancel = getattr(stream, "cancel", None)
                if cancel is not None:
                    cancel()
            await asyncio.sleep(self._retry_interval_s)

    def _handle(self, event: pb.MetadataEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "delta":
            if self._pending is not None:
                raise MetadataStreamOrderError(
                    f"delta at index {event.delta.index} in the middle of a snapshot"
                )
            if event.delta.index <= self.index:
                raise MetadataStreamOrderError(
                    f"delta at index {event.delta.index}, but this follower already has "
                    f"everything up to index {self.index}"
                )
            self._changes.note_records(self.image, event.delta.records)
            self.image.apply_batch(
                mpb.MetadataBatch(records=event.delta.records), event.delta.index
            )
            self._advance(event.delta.index, changed=True)
        elif kind == "snapshot":
            chunk = event.snapshot
            if chunk.first:
                self._pending = MetadataImage()
            elif self._pending is None:
                raise MetadataStreamOrderError(
                    f"a snapshot chunk (last index {chunk.last_index}) without its first chunk"
                )
            for record in chunk.records:
                self._pending.apply(record, chunk.last_index)
            if chunk.last:
                # Every record was applied at the snapshot's index: the image is complete
                # (not rebuilt again from its own records: 100,000 partitions twice).
                pending = self._pending
                if pending.last_applied_index != chunk.last_index:  # none applied at it
                    pending = MetadataImage.from_records(
                        pending.to_snapshot_records(), chunk.last_index
                    )
                self.image = pending
                self._pending = None
                log.info(
                    "metadata_snapshot_loaded",
                    index=chunk.last_index,
                    topics=len(self.image.topics),
                )
                self._changes.add_all()
                self._advance(chunk.last_index, changed=True)
        elif kind == "progress":
            # The stream says everything committed so far has been sent: the image is whole
            # (the authorizer trusts its ACLs from now on).
            first = not self.caught_up
            if first:
                self.caught_up = True
                log.info("metadata_caught_up", index=event.progress.commit_index)
            self._advance(event.progress.commit_index, changed=first)

    def _advance(self, index: int, *, changed: bool) -> None:
        """Waiters on the index are woken at every advance; listeners only when the image
        changed (or first caught up): a Progress every second must not make a broker with
        100,000 partitions look at all of them."""
        if index > self.index:
            self.index = index
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()
        if changed:
            for listener in self._listeners:
                listener()
