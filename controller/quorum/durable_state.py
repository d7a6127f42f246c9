"""Term and vote (``quorum-state``) and snapshots (``<index>-<term>.checkpoint``) on disk.

Both are written with fsync and an atomic rename before anything that depends on them happens,
and both are checked on read: a damaged quorum-state stops the node (voting twice in a term
would break Raft); a damaged snapshot is skipped in favour of an older one.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import crc32c
import structlog

from raftka.common.errors import DataDirectoryError
from raftka.common.files import atomic_write, fsync_dir
from raftka.common.ids import Index, NodeId, Term
from raftka.controller.raft.types import HardState, Snapshot, SnapshotMeta

log = structlog.get_logger(__name__)

STATE_FILE = "quorum-state"
SNAPSHOT_SUFFIX = ".checkpoint"
_SNAPSHOT_HEADER = struct.Struct(">8sIQ")  # magic, crc32c of data, data length
_SNAPSHOT_MAGIC = b"RFKSNAP1"
KEEP_SNAPSHOTS = 2


class HardStateFile:
    def __init__(self, directory: Path) -> None:
        self.path = directory / STATE_FILE

    def load(self) -> HardState:
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
        for path in reversed(self._files()):
            snapshot = self._read(path)
            if snapshot is not None:
                return snapshot
        return None

    def _files(self) -> list[Path]:
        for part in self.directory.glob(f"*{SNAPSHOT_SUFFIX}.part"):
            part.unlink(missing_ok=True)
        return sorted(self.directory.glob(f"*{SNAPSHOT_SUFFIX}"))

    def _read(self, path: Path) -> Snapshot | None:
        stem = path.name.removesuffix(SNAPSHOT_SUFFIX)
        index_text, _, term_text = stem.partition("-")
        raw = path.read_bytes()
        if len(raw) >= _SNAPSHOT_HEADER.size and index_text.isdigit() and term_text.isdigit():
            magic, crc, length = _SNAPSHOT_HEADER.unpack_from(raw)
            data = raw[_SNAPSHOT_HEADER.size :]
            if magic == _SNAPSHOT_MAGIC and length == len(data) and crc32c.crc32c(data) == crc:
                return Snapshot(SnapshotMeta(Index(int(index_text)), Term(int(term_text))), data)
        log.warning("snapshot_damaged_skipped", path=str(path))
        return None
