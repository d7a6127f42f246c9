"""A seeded generator of valid histories for the checker tests.

It simulates partitions as in-memory logs and processes that each have at most one operation
in flight: an operation is invoked, takes effect at a later step (its linearization point),
and completes at a later step still, while other processes' operations interleave. So every
history it makes is one a correct broker could produce: a send that completed before another
was invoked is in the log before it, a poll returns exactly the log's records from its
``from_offset``, and the final read is each log as it ends.

Sends are acknowledged, fail (and write nothing), or time out (INFO) and then write now, write
later (a request that lands after the client gave up), or never write. Polls read sequentially
from the consumer's position, sometimes rewind, and sometimes fail without returning records.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from raftka.client.types import TopicPartition
from raftka.ops.experiments.history import History, Operation, Outcome

TOPIC = "events"


@dataclass(slots=True)
class _InFlight:
    kind: str  # "send" or "poll"
    partition: TopicPartition
    invoke: float
    value: str = ""
    from_offset: int = 0
    applied: bool = False
    outcome: Outcome = Outcome.OK
    offset: int | None = None
    records: list[tuple[int, str]] = field(default_factory=list)


class _Simulation:
    def __init__(self, rng: random.Random, processes: int, partitions: int) -> None:
        self.rng = rng
        self.partitions = [TopicPartition(TOPIC, i) for i in range(partitions)]
        self.logs: dict[TopicPartition, list[str]] = {tp: [] for tp in self.partitions}
        self.history = History()
        self.clock = 0.0
        self.in_flight: dict[int, _InFlight] = {}
        self.sent = dict.fromkeys(range(processes), 0)
        self.positions: dict[tuple[int, TopicPartition], int] = {}
        self.late_writes: list[tuple[TopicPartition, str]] = []

    def step(self, process: int) -> None:
        self.clock += self.rng.uniform(0.001, 0.01)
        if self.late_writes and self.rng.random() < 0.05:
            tp, value = self.late_writes.pop(self.rng.randrange(len(self.late_writes)))
            self.logs[tp].append(value)
        op = self.in_flight.get(process)
        if op is None:
            self.in_flight[process] = self._invoke(process)
        elif not op.applied:
            self._apply(op)
        else:
            self._complete(process, op)

    def finish(self) -> History:
        """Completes what is in flight, lands the late writes, and reads every partition."""
        for process, op in sorted(self.in_flight.items()):
            self.clock += 0.001
            if not op.applied:
                self._apply(op)
            self._complete(process, op)
        for tp, value in self.late_writes:
            self.logs[tp].append(value)
        reader = len(self.sent)
        for tp in self.partitions:
            self.history.add(
                Operation.final_read(
                    reader,
                    tp,
                    enumerate(self.logs[tp]),
                    invoke=self.clock + 1,
                    complete=self.clock + 2,
                )
            )
        return self.history

    def _invoke(self, process: int) -> _InFlight:
        tp = self.rng.choice(self.partitions)
        if self.rng.random() < 0.6:
            self.sent[process] += 1
            return _InFlight("send", tp, self.clock, value=f"p{process}-{self.sent[process]}")
        position = self.positions.get((process, tp), 0)
        if position and self.rng.random() < 0.05:
            position = self.rng.randrange(position)  # a rewind: reading again is allowed
        return _InFlight("poll", tp, self.clock, from_offset=position)

    def _apply(self, op: _InFlight) -> None:
        op.applied = True
        log = self.logs[op.partition]
        roll = self.rng.random()
        if op.kind == "poll":
            if roll < 0.1:
                op.outcome = Outcome.INFO
            else:
                end = op.from_offset + self.rng.randint(0, 4)
                op.records = list(enumerate(log))[op.from_offset : end]
        elif roll < 0.7:
            op.offset = len(log)
            log.append(op.value)
        elif roll < 0.8:
            op.outcome = Outcome.FAIL
        else:
            op.outcome = Outcome.INFO
            if roll < 0.87:
                log.append(op.value)
            elif roll < 0.94:
                self.late_writes.append((op.partition, op.value))

    def _complete(self, process: int, op: _InFlight) -> None:
        del self.in_flight[process]
        invoke, complete = op.invoke, self.clock
        if op.kind == "send":
            self.history.add(
                Operation.send(
                    process,
                    op.partition,
                    op.value,
                    invoke=invoke,
                    complete=complete,
                    outcome=op.outcome,
                    offset=op.offset,
                )
            )
            return
        self.history.add(
            Operation.poll(
                process,
                op.partition,
                op.from_offset,
                op.records,
                invoke=invoke,
                complete=complete,
                outcome=op.outcome,
            )
        )
        if op.outcome is Outcome.OK:
            next_offset = op.records[-1][0] + 1 if op.records else op.from_offset
            self.positions[(process, op.partition)] = next_offset


def random_history(
    seed: int, *, processes: int = 6, partitions: int = 3, steps: int = 600
) -> History:
    """A valid history: ``steps`` random steps of ``processes`` clients over ``partitions``
    partitions, then one final read per partition (by process ``processes``)."""
    rng = random.Random(seed)
    sim = _Simulation(rng, processes, partitions)
    for _ in range(steps):
        sim.step(rng.randrange(processes))
    return sim.finish()
