"""The workload of an experiment: producers and consumers that record every operation.

Each producer is a *process* of the history bound to one partition: it sends one record at a
time, each value unique (``"p3-17"``); a send that failed is recorded and the next one carries
a new value. Inside one send the client library's producer retries as it would for any
application (idempotent with acks=all), so the checker's duplicate and order rules test those
retries. Each consumer reads one partition sequentially from offset 0 up to the high watermark.

Sending and reading go through two small interfaces, :class:`RecordSender` and
:class:`RecordReader`: the sender is ``producer_sender.ProducerSender`` (the AsyncProducer);
the reader is plain Fetch RPCs (``rpc_clients.RpcReader``), so that every poll is one fetch
from a given offset, recorded as it was answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from raftka.client.types import TopicPartition
from raftka.ops.experiments.history import History, Operation, Outcome


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    """OK (acknowledged), FAIL (definitely not written) or INFO (unknown)."""
    offset: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class PollResult:
    records: tuple[tuple[int, str], ...] = ()
    error: str = ""
    """Empty when the fetch was answered."""
    reset_to: int | None = None
    """Set when the position is past the log (OFFSET_OUT_OF_RANGE): where to go on from."""


class RecordSender(Protocol):
    async def send(self, partition: int, value: bytes) -> SendResult:
        """Send one record once (never retried) and say how it ended."""

    async def close(self) -> None: ...


class RecordReader(Protocol):
    async def poll(self, partition: int, offset: int) -> PollResult:
        """One fetch of ``partition`` from ``offset`` (up to the high watermark)."""

    async def read_all(self, partition: int) -> list[tuple[int, str]]:
        """Every record of ``partition``, from offset 0 to its end (the final read)."""

    async def close(self) -> None: ...


@dataclass
class Tally:
    """Running totals for the progress line."""

    acknowledged: int = 0
    failed: int = 0
    indeterminate: int = 0
    polls: int = 0
    records_read: int = 0
    last_ack: dict[int, float] = field(default_factory=dict)
    """Partition -> when its last acknowledged send completed."""


class Workload:
    def __init__(
        self,
        topic: str,
        partitions: int,
        sender: RecordSender,
        reader: RecordReader,
        clock: Callable[[], float],
        *,
        producers_per_partition: int = 2,
        rate: float = 200.0,
        consume: bool = True,
        error_backoff_s: float = 0.1,
    ) -> None:
        if partitions < 1 or producers_per_partition < 1 or rate <= 0:
            raise ValueError("partitions, producers per partition and rate must be positive")
        self.topic = topic
        self.partitions = partitions
        self.sender = sender
        self.reader = reader
        self.clock = clock
        self.producers_per_partition = producers_per_partition
        self.rate = rate
        self.consume = consume
        self.error_backoff_s = error_backoff_s
        self.history = History()
        self.tally = Tally()
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ processes

    def producer_ids(self) -> list[tuple[int, int]]:
        """(process id, partition) of every producer: processes 1, 2, ... round the partitions."""
        count = self.partitions * self.producers_per_partition
        return [(i + 1, i % self.partitions) for i in range(count)]

    def consumer_ids(self) -> list[tuple[int, int]]:
        first = self.partitions * self.producers_per_partition + 1
        return [(first + p, p) for p in range(self.partitions)] if self.consume else []

    @property
    def final_reader(self) -> int:
        return 0

    async def run(self) -> None:
        """Run every producer and consumer until :meth:`stop`."""
        self._stop.clear()
        interval = len(self.producer_ids()) / self.rate
        tasks = [
            asyncio.create_task(self._produce(pid, p, interval), name=f"producer-{pid}")
            for pid, p in self.producer_ids()
        ]
        tasks += [
            asyncio.create_task(self._consume(pid, p), name=f"consumer-{pid}")
            for pid, p in self.consumer_ids()
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        self._stop.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the workload stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def _produce(self, process: int, partition: int, interval: float) -> None:
        tp = TopicPartition(self.topic, partition)
        count = 0
        next_at = self.clock()
        while not self._stop.is_set():
            await self._pause(next_at - self.clock())
            if self._stop.is_set():
                return
            count += 1
            value = f"p{process}-{count}"
            invoke = self.clock()
            result = await self.sender.send(partition, value.encode())
            complete = self.clock()
            self.history.add(
                Operation.send(
                    process,
                    tp,
                    value,
                    invoke=invoke,
                    complete=complete,
                    outcome=result.outcome,
                    offset=result.offset if result.outcome is Outcome.OK else None,
                    error=result.error,
                )
            )
            if result.outcome is Outcome.OK:
                self.tally.acknowledged += 1
                self.tally.last_ack[partition] = complete
            else:
                if result.outcome is Outcome.FAIL:
                    self.tally.failed += 1
                else:
                    self.tally.indeterminate += 1
                await self._pause(self.error_backoff_s)
            next_at = max(next_at + interval, self.clock() - 1.0)  # no burst to catch up

    async def _consume(self, process: int, partition: int) -> None:
        tp = TopicPartition(self.topic, partition)
        position = 0
        while not self._stop.is_set():
            invoke = self.clock()
            result = await self.reader.poll(partition, position)
            complete = self.clock()
            if self._stop.is_set() and not result.records:
                return
            if result.error:
                self.history.add(
                    Operation.poll(
                        process, tp, position, (), invoke=invoke, complete=complete,
                        outcome=Outcome.INFO,
                    )
                )  # fmt: skip
                if result.reset_to is not None:
                    position = min(position, result.reset_to)
                await self._pause(self.error_backoff_s)
                continue
            if not result.records:
                continue
            self.history.add(
                Operation.poll(
                    process, tp, position, result.records, invoke=invoke, complete=complete
                )
            )
            self.tally.polls += 1
            self.tally.records_read += len(result.records)
            position = result.records[-1][0] + 1

    async def final_read(
        self, partitions: Sequence[int] | None = None, *, attempts: int = 1, backoff_s: float = 1.0
    ) -> list[str]:
        """Read every partition in full and record it (after the cluster has healed), trying
        each up to ``attempts`` times. Returns the failures: a partition that could not be read
        is recorded as a FAIL final read, and the checker then lists it as unchecked."""
        failures: list[str] = []
        for partition in partitions if partitions is not None else range(self.partitions):
            tp = TopicPartition(self.topic, partition)
            invoke = self.clock()
            try:
                records = await self._read_all(partition, attempts, backoff_s)
            except Exception as e:
                failures.append(f"final read of {tp} failed: {e}")
                self.history.add(
                    Operation.final_read(
                        self.final_reader, tp, (), invoke=invoke, complete=self.clock(),
                        outcome=Outcome.FAIL,
                    )
                )  # fmt: skip
                continue
            self.history.add(
                Operation.final_read(
                    self.final_reader, tp, records, invoke=invoke, complete=self.clock()
                )
            )
        return failures

    async def _read_all(
        self, partition: int, attempts: int, backoff_s: float
    ) -> list[tuple[int, str]]:
        for attempt in range(1, attempts + 1):
            try:
                return await self.reader.read_all(partition)
            except Exception:
                if attempt == attempts:
                    raise
                await asyncio.sleep(backoff_s)
        raise AssertionError("unreachable")
