"""The durable side of one controller's Raft node: log, hard state and snapshots on disk.

The Raft log uses the same segmented log of Kafka v2 record batches as partition logs
(raftka.common.storage): entry ``i`` is one batch at offset ``i`` whose partition leader
epoch is the entry's term and whose single record holds the entry's data; NOOP entries are
control batches. Before the log is opened, every batch is checked by CRC (segment_check.py): a torn tail left by a crash is cut as the log opens, any other damage
stops the node. So does a damaged newest snapshot (durable_state.py), and a missing
quorum-state beside a log that holds entries (the node would forget its term and vote).

All methods block (disk I/O and fsync); the runtime calls them off the event loop. RaftStorage
is the production ``RaftLogStore`` (raftka.controller.quorum.ports).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from raftka.common.errors import DataDirectoryError
from raftka.common.ids import Index, Term
from raftka.common.records.builder import build_batch
from raftka.common.records.decoder import decode_batch
from raftka.common.storage.config import LogConfig
from raftka.common.storage.log import SegmentedLog
from raftka.controller.quorum.durable_state import STATE_FILE, HardStateFile, SnapshotStore
from raftka.controller.quorum.segment_check import check_segments, raft_segments
from raftka.controller.raft.types import Entry, EntryKind, HardState, PersistedState, Snapshot

log = structlog.get_logger(__name__)

FIRST_INDEX = 1
RAFT_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_ENTRY_BYTES = 64 * 1024 * 1024


def encode_entry(entry: Entry) -> bytes:
    return bytes(
        build_batch(
            [(int(time.time() * 1000), None, entry.data, ())],
            base_offset=entry.index,
            partition_leader_epoch=entry.term,
            control=entry.kind is EntryKind.NOOP,
        )
    )


def decode_entry(batch: bytes | memoryview) -> Entry:
    decoded = decode_batch(batch, verify=False)
    header = decoded.header
    kind = EntryKind.NOOP if header.is_control else EntryKind.NORMAL
    data = decoded.records[0].value if decoded.records else None
    return Entry(Index(header.base_offset), Term(header.partition_leader_epoch), kind, data or b"")


class RaftStorage:
    def __init__(self, directory: Path, *, segment_bytes: int = RAFT_SEGMENT_BYTES) -> None:
        self.directory = directory
        self.hard_state_file = HardStateFile(directory)
        self.snapshots = SnapshotStore(directory)
        self._had_segments = bool(raft_segments(directory))
        # Before the log opens (and cuts what looks torn): the newest snapshot must be whole,
        # and every entry too, but for a tail a crash tore.
        self._snapshot = self.snapshots.load_latest()
        check_segments(directory)
        self.log = SegmentedLog.open(
            directory,
            LogConfig(
                segment_bytes=segment_bytes,
                initial_start_offset=FIRST_INDEX,
                max_batch_bytes=MAX_ENTRY_BYTES,
            ),
        )
        self.bytes_since_snapshot = 0
        self._log_dirty = False
        self.snapshot_saved_at: float | None = (
            self.snapshots.newest_mtime() if self._snapshot is not None else None
        )
        """Wall-clock time the newest snapshot was written (taken or received), for metrics."""

    def load(self) -> PersistedState:
        """Read everything back after a start (clean or after kill -9)."""
        hard_state = self.hard_state_file.load()
        snapshot = self._snapshot
        if not self.hard_state_file.exists():
            self._check_fresh(snapshot)
        first = Index(snapshot.meta.index + 1) if snapshot else Index(FIRST_INDEX)
        if self.log.log_end_offset < first or self.log.log_start_offset > first:
            # The log does not continue the snapshot (a crash between saving a received
            # snapshot and resetting the log): the snapshot wins, the log starts after it.
            self.log.reset(first)
        entries: list[Entry] = []
        for _base, _last, view in self.log.iter_batches(first):
            entries.append(decode_entry(view))
            self.bytes_since_snapshot += len(view)
        log.info(
            "raft_storage_loaded",
            term=hard_state.term,
            voted_for=hard_state.voted_for,
            snapshot_index=snapshot.meta.index if snapshot else 0,
            first_index=first,
            last_index=entries[-1].index if entries else first - 1,
        )
        return PersistedState(hard_state, snapshot, tuple(entries))

    def _check_fresh(self, snapshot: Snapshot | None) -> None:
        """No quorum-state: fine for a node that never ran; refused when the log holds entries
        (the node voted in some term and would forget it, so it could vote twice)."""
        log_holds = self.log.log_end_offset > max(self.log.log_start_offset, FIRST_INDEX - 1)
        if snapshot is not None or log_holds or self.log.log_start_offset > FIRST_INDEX:
            last = max(snapshot.meta.index if snapshot else 0, self.log.log_end_offset - 1)
            raise DataDirectoryError(
                f"{self.directory / STATE_FILE} is missing, but the Raft log beside it holds "
                f"entries up to index {last}: this node took part in the quorum and lost the "
                "record of its term and vote, so it could vote twice in one term. Restore the "
                "file from a backup of this node, or: stop it, make the quorum move to a new "
                "term without it (`raftka quorum transfer-leadership`), delete everything in "
                f"{self.directory}, and start it again (docs/operations.md, 'A controller "
                "refuses to start')"
            )
        if self._had_segments:
            log.warning(
                "quorum_state_missing",
                path=str(self.directory / STATE_FILE),
                detail="the Raft log is empty, so this node starts as a new one; if it voted "
                "before, it may vote again in the same term",
            )

    def persist(
        self,
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        truncate_from: Index | None,
        entries: Sequence[Entry],
    ) -> None:
        """Make a Ready's state durable before its messages go out: ``write``, then ``sync``."""
        self.write(hard_state, snapshot, truncate_from, entries)
        self.sync()

    def write(
        self,
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        truncate_from: Index | None,
        entries: Sequence[Entry],
    ) -> None:
        """Term and vote first (an entry is never on disk with a term the node has not
        recorded; the hard state file is replaced atomically and fsynced), then a received
        snapshot, truncation of a conflicting suffix, and new entries, which ``sync`` makes
        durable."""
        if hard_state is not None:
            self.hard_state_file.save(hard_state)
        if snapshot is not None:
            self.snapshots.save(snapshot)
            self.snapshot_saved_at = time.time()
            self.log.reset(Index(snapshot.meta.index + 1))
            self.bytes_since_snapshot = 0
        if truncate_from is not None and truncate_from < self.log.log_end_offset:
            self.log.truncate_to(max(truncate_from, self.log.log_start_offset))
        if entries:
            if entries[0].index != self.log.log_end_offset:
                # A follower receiving entries that overwrite a suffix it already holds.
                self.log.truncate_to(entries[0].index)
            payload = b"".join(encode_entry(e) for e in entries)
            self.log.append(payload, assign_offsets=False)
            self.bytes_since_snapshot += len(payload)
        if entries or truncate_from is not None or snapshot is not None:
            self._log_dirty = True

    def sync(self) -> None:
        """fsync the log if ``write`` changed it."""
        if self._log_dirty:
            # fsync the data only: the recovery-point checkpoint would cost a file write,
            # rename and directory fsync per entry, and recovery rescans a short tail anyway.
            self.log.flush(checkpoint=False)
            self._log_dirty = False

    def compact(self, snapshot: Snapshot) -> None:
        """A snapshot of applied state was taken: save it and drop the log below it."""
        self.snapshots.save(snapshot)
        self.snapshot_saved_at = time.time()
        self.log.delete_before(Index(snapshot.meta.index + 1))
        self.bytes_since_snapshot = 0

    def close(self) -> None:
        self.log.close()
