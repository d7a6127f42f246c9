"""A simulated transactional producer instance: what it holds and which step it is at. The
simulation drives it (simulation.py) and knows, unlike the instance itself, whether it has been
fenced."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .partitions import TP


class Phase(enum.Enum):
    INIT = "init"  # calling InitProducerId
    IDLE = "idle"  # between transactions
    TXN = "txn"  # adding partitions and writing
    ENDING = "ending"  # calling EndTxn (again, after a lost answer or CONCURRENT_TRANSACTIONS)
    DEAD = "dead"  # refused for good (fenced, or its id expired); never acts again


@dataclass(eq=False, slots=True)
class SimProducer:
    tid: str
    instance: int
    phase: Phase = Phase.INIT
    producer_id: int = -1
    epoch: int = -1
    #: partition -> records still to write in this transaction
    plan: dict[TP, int] = field(default_factory=dict)
    added: set[TP] = field(default_factory=set)
    written: list[tuple[TP, int]] = field(default_factory=list)
    commit: bool = True
    next_ms: int = 0
    paused_until_ms: int = 0
    #: A newer instance's InitProducerId succeeded, or the coordinator aborted this instance's
    #: transaction itself: no call of this instance may succeed from now on.
    fenced: bool = False

    def ready(self, now_ms: int) -> bool:
        return (
            self.phase is not Phase.DEAD
            and self.paused_until_ms <= now_ms
            and self.next_ms <= now_ms
        )

    def __repr__(self) -> str:
        return (
            f"<{self.tid}#{self.instance} {self.phase.value} pid={self.producer_id} "
            f"epoch={self.epoch} fenced={self.fenced}>"
        )
