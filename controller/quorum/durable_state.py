"""Term and vote (``quorum-state``) and snapshots (``<index>-<term>.checkpoint``) on disk.

Both are written with fsync and an atomic rename before anything that depends on them happens,
and both are checked on read. A damaged quorum-state stops the node (voting twice in a term
would break Raft). A damaged newest snapshot stops it too: the log below it is gone, so an
older snapshot would make this voter forget entries it acknowledged, and a voter that holds
less than it acknowledged can elect a leader that lacks a committed entry. A crash never
leaves a damaged snapshot behind (each is written whole and fsynced, then renamed), so damage
means the disk failed. Only the newest snapshot is ever read.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import crc32c

from raftka.common.errors import DataDirectoryError
from raftka.common.files import atomic_write, fsync_dir
from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.types import HardState, Snapshot, SnapshotMeta

STATE_FILE = "quorum-state"
SNAPSHOT_SUFFIX = ".checkpoint"
_SNAPSHOT_HEADER = struct.Struct(">8sIQ")  # magic, crc32c of data, data length
_SNAPSHOT_MAGIC = b"RFKSNAP1"
KEEP_SNAPSHOTS = 2


def rebuild_advice(directory: Path) -> str:
    """The way out for a voter whose Raft log or snapshot is damaged (docs/operations.md)."""
    return (
        "this voter may have acknowledged entries it can no longer read, so it must not take "
        "part in the quorum as it is: with the other voters up and a leader elected, stop this "
        f"node, delete everything in {directory} except quorum-state, and start it again; it "
        "rebuilds its log from the leader (docs/operations.md, 'A controller refuses to start')"
    )


class HardStateFile:
    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> HardState:
        """The saved term and vote; term 0 and no vote when the file does not exist (the
        caller decides whether that is a fresh node)."""
        if not self.path.exists():
            return HardState(Term(0), None)
        try:
            data = json.loads(self.path.read_bytes())
            voted = data["voted_for"]
            return HardState(Term(int(data["term"])), None if voted is None else NodeId(int(voted)))
        except (ValueError, KeyError, TypeError) as e:
            raise DataDirectoryError(
                f"{self.path} is damaged ({e}); restoring it by hand risks a double vote: "
                "remove this node's data directory and re-add the node"
            ) from None

    def save(self, state: HardState) -> None:
        atomic_write(
            self.path, json.dumps({"term": state.term, "voted_for": state.voted_for}).encode()
        )


class SnapshotStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, snapshot: Snapshot) -> None:
        name = f"{snapshot.meta.index:020d}-{snapshot.meta.term:010d}{SNAPSHOT_SUFFIX}"
        header = _SNAPSHOT_HEADER.pack(
            _SNAPSHOT_MAGIC, crc32c.crc32c(snapshot.data), len(snapshot.data)
        )
        part = self.directory / (name + ".part")
        with open(part, "wb") as f:
            f.write(header)
            f.write(snapshot.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, self.directory / name)
        fsync_dir(self.directory)
        for old in self._files()[:-KEEP_SNAPSHOTS]:
            old.unlink(missing_ok=True)

    def load_latest(self) -> Snapshot | None:
        """The newest snapshot; raises DataDirectoryError when it is damaged."""
        files = self._files()
        if not files:
            return None
        newest = files[-1]
        snapshot, problem = self._read(newest)
        if snapshot is None:
            raise DataDirectoryError(
                f"the newest Raft snapshot {newest} is damaged ({problem}); the log below it "
                "was deleted when it was taken, and starting from an older snapshot would "
                f"forget what it covers: {rebuild_advice(self.directory)}"
            )
        return snapshot

    def newest_mtime(self) -> float | None:
        """When the newest snapshot file was written (wall-clock seconds), or None."""
        files = self._files()
        return files[-1].stat().st_mtime if files else None

    def _files(self) -> list[Path]:
        for part in self.directory.glob(f"*{SNAPSHOT_SUFFIX}.part"):
            part.unlink(missing_ok=True)
        return sorted(self.directory.glob(f"*{SNAPSHOT_SUFFIX}"))

    def _read(self, path: Path) -> tuple[Snapshot | None, str]:
        """The snapshot in ``path``, or None and what is wrong with the file."""
        stem = path.name.removesuffix(SNAPSHOT_SUFFIX)
        index_text, _, term_text = stem.partition("-")
        if not (index_text.isdigit() and term_text.isdigit()):
            return None, "its name is not <index>-<term>.checkpoint"
        raw = path.read_bytes()
        if len(raw) < _SNAPSHOT_HEADER.size:
            return None, f"{len(raw)} bytes, shorter than the {_SNAPSHOT_HEADER.size}-byte header"
        magic, crc, length = _SNAPSHOT_HEADER.unpack_from(raw)
        data = raw[_SNAPSHOT_HEADER.size :]
        if magic != _SNAPSHOT_MAGIC:
            return None, f"bad magic {magic!r}"
        if length != len(data):
            return None, f"the header says {length} bytes of data, the file holds {len(data)}"
        actual = crc32c.crc32c(data)
        if actual != crc:
            return None, f"CRC-32C mismatch: stored 0x{crc:08x}, computed 0x{actual:08x}"
        return Snapshot(SnapshotMeta(Index(int(index_text)), Term(int(term_text))), data), ""
