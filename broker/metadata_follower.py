"""Follows the controllers' committed metadata log into a local metadata image.

The stream (WatchMetadata) starts with a snapshot when this follower is new or too far behind,
then carries one delta per committed entry; any controller serves it, so the follower moves to
another when its stream breaks. Listeners run after every change, on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog

from raftka.common.errors import RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import metadata_pb2 as mpb

log = structlog.get_logger(__name__)


class MetadataFollower:
    def __init__(self, client: ControllerClient, retry_interval_s: float = 0.2) -> None:
        self._client = client
        self._retry_interval_s = retry_interval_s
        self.image = MetadataImage()
        self.index = 0
        """The highest committed metadata index this follower has seen (deltas and NOOPs)."""
        self._listeners: list[Callable[[], None]] = []
        self._advanced = asyncio.Event()
        self._pending: MetadataImage | None = None

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    async def wait_for_index(self, index: int) -> None:
        while self.index < index:
            event = self._advanced
            await event.wait()

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                async for event in self._client.watch_metadata(self.index, attempt):
                    self._handle(event)
                    attempt = 0
            except (grpc.aio.AioRpcError, RaftkaError) as e:
                attempt += 1
                if attempt == 1:
                    log.info("metadata_stream_broken", error=str(e)[:200], index=self.index)
            await asyncio.sleep(self._retry_interval_s)

    def _handle(self, event: pb.MetadataEvent) -> None:
        kind = event.WhichOneof("event")
        if kind == "delta":
            if event.delta.index <= self.image.last_applied_index:
                return
            self.image.apply_batch(
                mpb.MetadataBatch(records=event.delta.records), event.delta.index
            )
            self._advance(event.delta.index)
        elif kind == "snapshot":
            chunk = event.snapshot
            if chunk.first or self._pending is None:
                self._pending = MetadataImage()
            for record in chunk.records:
                self._pending.apply(record, chunk.last_index)
            if chunk.last:
                self.image = MetadataImage.from_records(
                    self._pending.to_snapshot_records(), chunk.last_index
                )
                self._pending = None
                log.info(
                    "metadata_snapshot_loaded",
                    index=chunk.last_index,
                    topics=len(self.image.topics),
                )
                self._advance(chunk.last_index)
        elif kind == "progress":
            self._advance(event.progress.commit_index)

    def _advance(self, index: int) -> None:
        if index > self.index:
            self.index = index
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()
        for listener in self._listeners:
            listener()
