"""Rebuilding the transaction indexes a log could not trust on open, during the producer-state
replay.

A segment's ``.txnindex`` lists the transactions aborted by the ABORT markers it holds, with
each one's first offset, which may lie in an earlier segment: only the producer state knows
it. So an index that was missing or damaged on open, or whose segment was recovered
(:attr:`~raftka.common.storage.txn_index.TxnIndex.needs_rebuild`), is rebuilt by the replay
that restores the producer state: it starts from a snapshot at or below the first such
segment (instead of the newest one) and hands every transaction a marker completes in those
segments to :meth:`TxnIndexRebuild.completed`.
"""

from __future__ import annotations

from bisect import bisect_right

import structlog

from raftka.broker.producers.state import CompletedTxn
from raftka.common.storage import SegmentedLog
from raftka.common.storage.txn_index import AbortedTxn, TxnIndex

log = structlog.get_logger(__name__)


class TxnIndexRebuild:
    """The stale transaction indexes of one log and the entries the replay finds for them."""

    def __init__(self, segmented_log: SegmentedLog) -> None:
        indexes = segmented_log.txn_indexes()
        self._bases = [base for base, _index in indexes]
        self._stale: dict[int, tuple[TxnIndex, list[AbortedTxn]]] = {
            base: (index, []) for base, index in indexes if index.needs_rebuild
        }
        self._dir = segmented_log.directory

    @property
    def replay_from(self) -> int | None:
        """The base offset of the first stale index's segment (None: nothing to rebuild):
        the replay must start at or below it."""
        return min(self._stale, default=None)

    def completed(self, txn: CompletedTxn) -> None:
        """A transaction the replay saw end (its marker at ``txn.last_offset``)."""
        if txn.committed or not self._stale:
            return
        base = self._bases[bisect_right(self._bases, txn.last_offset) - 1]
        found = self._stale.get(base)
        if found is not None:
            found[1].append(txn.aborted())

    def finish(self) -> None:
        """Writes what was found (the replay covered every stale segment)."""
        for base, (index, entries) in sorted(self._stale.items()):
            index.rebuilt(entries)
            log.info(
                "txn_index_rebuilt",
                directory=str(self._dir),
                base_offset=base,
                aborted_transactions=len(entries),
            )
