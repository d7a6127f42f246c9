"""What the quorum runtime needs of the world around one Raft node, as small Protocols.

``RaftStorage`` (disk) and ``RaftTransport`` (gRPC) are the production implementations; the
Raft simulator (tests/sim) plugs in a disk that loses unflushed writes on a crash and a seeded
network, and drives the very same ``ReadyProcessor``. Time is not a port: the core counts
ticks, and whoever drives the processor decides when a tick happens (an asyncio timer in
production, a virtual clock in the simulator).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from raftka.common.ids import Index
from raftka.controller.raft.messages import Message
from raftka.controller.raft.types import Entry, HardState, PersistedState, Snapshot


class RaftLogStore(Protocol):
    """The durable side of a Raft node: hard state, log and snapshots. Calls may block (disk
    I/O and fsync); the asyncio runtime makes them off its event loop."""

    @property
    def bytes_since_snapshot(self) -> int:
        """Log bytes written since the last snapshot (drives the snapshot policy)."""

    def load(self) -> PersistedState:
        """Read back what is durable (after a clean stop or a crash)."""

    def write(
        self,
        hard_state: HardState | None,
        snapshot: Snapshot | None,
        truncate_from: Index | None,
        entries: Sequence[Entry],
    ) -> None:
        """Write a Ready's durable parts, in this order: term and vote, a received snapshot
        (replacing the log), truncation of a conflicting suffix, new entries. Not necessarily
        durable until ``sync``."""

    def sync(self) -> None:
        """fsync: everything written so far is durable when this returns."""

    def compact(self, snapshot: Snapshot) -> None:
        """Durably save a snapshot of applied state and drop the log it covers."""

    def close(self) -> None: ...


class MessageOutbox(Protocol):
    """Where a node's outgoing messages go. ``send`` must not block; delivery may fail
    (Raft tolerates lost, duplicated and reordered messages)."""

    def send(self, messages: list[Message]) -> None: ...


class PeerTransport(MessageOutbox, Protocol):
    """A message outbox with a lifecycle on the asyncio event loop (``RaftTransport``)."""

    def start(self) -> None: ...

    async def close(self) -> None: ...
