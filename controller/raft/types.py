"""Values the Raft core exchanges with its runtime and storage: entries, hard state, snapshots."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from raftka.common.ids import Index, NodeId, Term


class EntryKind(enum.IntEnum):
    """What a log entry carries."""

    NORMAL = 0
    """Opaque data proposed by the state machine (a batch of metadata records)."""
    NOOP = 1
    """Appended by every new leader so that entries of earlier terms can commit (Figure 8)."""


@dataclass(frozen=True, slots=True)
class Entry:
    index: Index
    term: Term
    kind: EntryKind
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message that depends on it leaves the node."""

    term: Term
    voted_for: NodeId | None


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """A snapshot covers every entry up to and including ``index``, whose term was ``term``."""

    index: Index
    term: Term


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes


@dataclass(frozen=True, slots=True)
class PersistedState:
    """Everything a node finds on disk when it starts: fed to the core's constructor."""

    hard_state: HardState
    snapshot: Snapshot | None
    entries: tuple[Entry, ...]
    """Entries after the snapshot (or from index 1 without one), contiguous and in order."""
