"""The invariants of the transaction simulation, as functions of the coordinator's state and the
partitions' (simulation.py says when each is checked)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from raftka.broker.transactions.state import TxnState
from raftka.broker.transactions.store import TxnStore

from .partitions import TP, ClosedTxn, SimPartition


@dataclass(frozen=True, slots=True)
class Decision:
    committed: bool
    partitions: frozenset[TP]


def check_backed(
    store: TxnStore, pid_tid: Mapping[int, str], tp: TP, pid: int, epoch: int, what: str
) -> None:
    """Only a transaction the coordinator holds open at that epoch (or has decided and not yet
    marked here: a write that was on its way) may hold data on a partition."""
    meta = store.get(pid_tid[pid])
    backed = (
        meta is not None
        and meta.producer_id == pid
        and tp in meta.partitions
        and (
            (meta.state is TxnState.ONGOING and meta.producer_epoch == epoch)
            or (meta.state.is_prepare and meta.producer_epoch - 1 == epoch)
        )
    )
    assert backed, (
        f"{what} on {tp} of producer {pid} epoch {epoch} is not in a transaction the "
        f"coordinator holds open: {meta}"
    )


def check_open_transactions(
    store: TxnStore, pid_tid: Mapping[int, str], partitions: Iterable[SimPartition]
) -> None:
    """What holds each LSO back is a transaction the coordinator will finish."""
    for partition in partitions:
        for txn in partition.open.values():
            check_backed(store, pid_tid, partition.tp, txn.producer_id, txn.epoch, "open txn")


class _Outcomes:
    """Which closed transaction holds a producer's record, by bisection."""

    def __init__(self, partition: SimPartition) -> None:
        self.by_pid: dict[int, list[ClosedTxn]] = {}
        for txn in partition.closed:  # in log order: first offsets ascending per producer
            self.by_pid.setdefault(txn.producer_id, []).append(txn)
        self.firsts = {pid: [t.first_offset for t in ts] for pid, ts in self.by_pid.items()}

    def of(self, offset: int, pid: int) -> bool | None:
        i = bisect.bisect_right(self.firsts.get(pid, []), offset) - 1
        if i < 0:
            return None
        txn = self.by_pid[pid][i]
        return txn.committed if offset < txn.marker_offset else None


def check_quiescent(
    store: TxnStore,
    decisions: Mapping[tuple[int, int], Decision],
    partitions: Mapping[TP, SimPartition],
    writes: Iterable[tuple[TP, int, int]],
    expected: Iterable[tuple[TP, int, int, bool]],
) -> None:
    """Every decision marked everywhere, no LSO held back, every write decided, and decided as
    its producer was told."""
    for tid, meta in store.ids.items():
        assert meta.state.is_idle, f"{tid} is still {meta.state.display_name} at quiescence"
    for (pid, epoch), decision in decisions.items():
        for tp in decision.partitions:
            outcomes = partitions[tp].markers.get((pid, epoch))
            assert outcomes == {decision.committed}, (
                f"transaction of producer {pid} epoch {epoch} decided {decision}: {tp} "
                f"has markers {outcomes}"
            )
    for partition in partitions.values():
        assert not partition.open, f"{partition.tp}: LSO held back by {partition.open}"
        assert partition.last_stable_offset == partition.end_offset
    outcomes_of = {tp: _Outcomes(partition) for tp, partition in partitions.items()}
    for tp, offset, pid in writes:
        assert outcomes_of[tp].of(offset, pid) is not None, f"{tp}@{offset} of {pid} is undecided"
    for tp, offset, pid, committed in expected:
        got = outcomes_of[tp].of(offset, pid)
        assert got == committed, (
            f"{tp}@{offset} of producer {pid}: the producer's EndTxn("
            f"{'commit' if committed else 'abort'}) succeeded, the partition has {got}"
        )
