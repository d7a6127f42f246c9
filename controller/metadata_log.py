"""The controller's state machine: committed metadata records applied to the metadata image.

It is what the Raft runtime applies committed entries to (every voter runs the same code), and
the feed WatchMetadata streams from: it remembers the most recent deltas so that a watcher that
is a little behind gets exactly the records it missed, and one that is far behind (or new) gets
the image as a snapshot first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from raftka.common.ids import Index
from raftka.common.metadata.image import MetadataImage
from raftka.controller.raft.types import Entry, Snapshot
from raftka.v1 import controller_pb2 as cpb
from raftka.v1 import metadata_pb2 as mpb

RECENT_DELTAS = 4096
SNAPSHOT_CHUNK_RECORDS = 2000
PROGRESS_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Delta:
    index: Index
    records: tuple[mpb.MetadataRecord, ...]


class MetadataStateMachine:
    def __init__(self) -> None:
        self.image = MetadataImage()
        self._recent: deque[Delta] = deque()
        self._floor = Index(0)
        """Every delta with an index above the floor is in ``_recent``."""
        self._changed = asyncio.Event()
        self.commit_index = Index(0)
        self.before_apply: Callable[[MetadataImage, mpb.MetadataBatch], None] | None = None
        """Called with the image and each committed batch just before it applies (metrics)."""

    # ---- the Raft state machine ----

    def check(self, data: bytes) -> str | None:
        """Why ``data`` is not an entry this state machine can apply, or None."""
        try:
            mpb.MetadataBatch.FromString(data)
        except DecodeError as e:
            return f"{len(data)} bytes that do not decode as a MetadataBatch ({e})"
        return None

    def apply(self, entry: Entry) -> None:
        batch = mpb.MetadataBatch.FromString(entry.data)
        if self.before_apply is not None:
            self.before_apply(self.image, batch)
        self.image.apply_batch(batch, entry.index)
        self._recent.append(Delta(entry.index, tuple(batch.records)))
        if len(self._recent) > RECENT_DELTAS:
            self._floor = self._recent.popleft().index
        self.note_progress(entry.index)

    def restore(self, snapshot: Snapshot) -> None:
        message = mpb.MetadataSnapshot.FromString(snapshot.data)
        self.image = MetadataImage.from_records(message.records, Index(message.last_index))
        self._recent.clear()
        self._floor = snapshot.meta.index
        self.note_progress(snapshot.meta.index)

    def take_snapshot(self) -> bytes:
        """Serialize the image. The log below it is about to be deleted, so the feed follows:
        a watcher behind this point gets the image as a snapshot, as it would from the log."""
        self._floor = Index(max(self._floor, self.image.last_applied_index))
        while self._recent and self._recent[0].index <= self._floor:
            self._recent.popleft()
        return mpb.MetadataSnapshot(
            last_index=self.image.last_applied_index,
            records=self.image.to_snapshot_records(),
        ).SerializeToString()

    def note_progress(self, index: Index) -> None:
        """The applied index moved (an entry, a NOOP or a snapshot): wake the watchers."""
        if index > self.commit_index:
            self.commit_index = index
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # ---- the WatchMetadata feed ----

    async def watch(self, after_index: int) -> AsyncGenerator[cpb.MetadataEvent, None]:
        """Yield committed metadata after ``after_index``, forever: a snapshot first when the
        deltas after it are no longer remembered, then each delta, and a Progress event when
        nothing happened for a while."""
        position = after_index
        while True:
            changed = self._changed
            if position < self._floor:
                position = int(self.commit_index)
                for event in self._snapshot_events():
                    yield event
            pending = [d for d in self._recent if d.index > position]
            if pending:
                for delta in pending:
                    position = delta.index
                    yield cpb.MetadataEvent(
                        delta=cpb.MetadataDelta(index=delta.index, records=delta.records)
                    )
                # Entries may have committed while this generator was suspended at a yield:
                # look again before moving past them.
                continue
            # No await since ``pending`` was found empty, so every delta up to the commit
            # index has been sent: only NOOP entries lie between ``position`` and it.
            position = max(position, int(self.commit_index))
            try:
                await asyncio.wait_for(changed.wait(), PROGRESS_INTERVAL_S)
            except TimeoutError:
                yield cpb.MetadataEvent(progress=cpb.Progress(commit_index=position))

    def _snapshot_events(self) -> list[cpb.MetadataEvent]:
        records = self.image.to_snapshot_records()
        chunks = [
            records[i : i + SNAPSHOT_CHUNK_RECORDS]
            for i in range(0, len(records), SNAPSHOT_CHUNK_RECORDS)
        ] or [[]]
        return [
            cpb.MetadataEvent(
                snapshot=cpb.SnapshotChunk(
                    last_index=self.commit_index,
                    records=chunk,
                    first=i == 0,
                    last=i == len(chunks) - 1,
                )
            )
            for i, chunk in enumerate(chunks)
        ]
