"""Ready: one batch of work the core hands to its runtime.

The runtime handles a Ready strictly in this order, then calls ``RaftNode.advance(ready)``:

1. persist, then fsync: ``hard_state`` (if set); ``snapshot`` (if set: it replaces the whole
   persisted log); delete persisted entries with index >= ``truncate_from`` (if set); append
   ``entries``;
2. send ``messages`` (they may depend on step 1 being durable);
3. if ``snapshot`` is set, restore the state machine from it; then apply ``committed`` in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.ids import Index
from raftka.controller.raft.messages import Message
from raftka.controller.raft.status import SoftState
from raftka.controller.raft.types import Entry, HardState, Snapshot


@dataclass(frozen=True, slots=True)
class Ready:
    hard_state: HardState | None
    """Changed term/vote: durable before any message of this Ready is sent."""
    snapshot: Snapshot | None
    """A snapshot received from the leader: persist it in place of the whole log."""
    truncate_from: Index | None
    """Delete persisted entries with index >= this before appending ``entries``."""
    entries: tuple[Entry, ...]
    """Entries to append durably (contiguous; the first follows what remains on disk)."""
    messages: tuple[Message, ...]
    """Send only after the above is durable."""
    committed: tuple[Entry, ...]
    """Committed entries to apply in order, each handed out once."""
    soft_state: SoftState | None
    """Role/leader/term when they changed since the previous Ready."""

    @property
    def must_sync(self) -> bool:
        """Whether the runtime has anything to fsync before sending."""
        return (
            self.hard_state is not None
            or self.snapshot is not None
            or self.truncate_from is not None
            or bool(self.entries)
        )
