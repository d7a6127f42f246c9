"""The sender: one task that drains ready batches from the accumulator to partition leaders.

Per broker it keeps up to max_in_flight_requests_per_connection Produce requests in flight, each
carrying at most one batch per partition. Answers are handled per batch:

- success (or DUPLICATE_SEQUENCE_NUMBER: the broker already had it) completes the records;
- a retriable error puts the batch back at the front of its partition's queue after a backoff,
  until delivery_timeout_ms; errors that mean stale metadata refresh it first;
- anything else fails the batch's records.

With idempotence a retried batch keeps its sequence and bytes. A partition whose head batch is a
retry sends only that batch until it is answered, so later batches (refused meanwhile with
OUT_OF_ORDER_SEQUENCE_NUMBER, which is retriable while an earlier batch is unacknowledged) go
again in order: retries neither reorder nor duplicate records. When a batch fails for good, the
producer waits for its requests in flight, takes a new producer id and renumbers what it has not
sent; batches that may already have been written fail with an "outcome unknown" error instead
of being written a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import grpc
import structlog

from raftka.client.errors import PartitionError
from raftka.client.producer.accumulator import RecordAccumulator
from raftka.client.producer.batch import ProducerBatch
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.errors import ProducerFencedError
from raftka.client.producer.in_flight import InFlight, ProduceAttempt
from raftka.client.producer.metrics import ProducerMetrics
from raftka.client.producer.sequences import InitProducerId, Sequences
from raftka.client.throttle import ThrottleStats
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError, RequestTimedOutError
from raftka.common.rpc.produce_wire import ProduceRawCall, encode_produce_request
from raftka.common.rpc.retry import RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.common.security_errors import AuthenticationFailedError
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

MAYBE_WRITTEN = frozenset(
    {
        ErrorCode.REQUEST_TIMED_OUT,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.NETWORK_EXCEPTION,
    }
)
"""Partition errors after which the batch may be in the log anyway."""

ANSWER_MARGIN_S = 0.5
"""How much longer than request_timeout_ms (the broker's own wait for acks) the producer waits
for an answer before it counts the attempt as lost: a frozen leader costs little more than the
request timeout, as in Kafka, where request.timeout.ms bounds the wait for a response."""

SEQUENCE_ERRORS = frozenset({ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, ErrorCode.UNKNOWN_PRODUCER_ID})


class DeliveryTimeoutError(RequestTimedOutError):
    """Records not acknowledged within delivery_timeout_ms. What happened to them differs, and
    the message and attributes say which:

    - never sent (``attempts == 0``): they expired in the producer's queue, not written;
    - sent, and every attempt refused with a clear answer (``maybe_written`` false): not written;
    - sent, and some attempt ended without a clear answer (``maybe_written`` true: a lost
      answer, a timeout): the outcome is unknown, the records may be in the log.
    """

    def __init__(self, message: str, *, attempts: int, maybe_written: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        """How many times the records' batch was sent."""
        self.maybe_written = maybe_written
        """The broker may hold the records: do not take this failure as "not written"."""

    @property
    def sent(self) -> bool:
        return self.attempts > 0


def delivery_timeout_error(batch: ProducerBatch, delivery_timeout_ms: int) -> DeliveryTimeoutError:
    """The error a batch fails with once delivery_timeout_ms has passed, saying whether it was
    sent and whether it may have been written."""
    head = (
        f"{batch.tp}: {batch.record_count} record(s) not acknowledged within "
        f"delivery_timeout_ms={delivery_timeout_ms}"
    )
    last = f" (last error: {batch.last_error})" if batch.last_error else ""
    if batch.attempts == 0:
        message = (
            f"{head}: they expired in the producer's queue, never sent, so not written "
            "(is the partition's leader reachable?)"
        )
    elif batch.maybe_written:
        message = (
            f"{head}: outcome unknown, they may have been written: sent {batch.attempts} "
            f"time(s), and an attempt ended without a clear answer{last}"
        )
    else:
        message = (
            f"{head}: sent {batch.attempts} time(s) and refused each time, so not written{last}"
        )
    return DeliveryTimeoutError(message, attempts=batch.attempts, maybe_written=batch.maybe_written)


class Leaders(Protocol):
    def leader_address(self, topic: str, partition: int) -> str | None: ...

    def leader_epoch(self, topic: str, partition: int) -> int:
        """The partition's leader epoch in the current metadata (-1 if unknown)."""
        ...

    async def refresh(self, topics: Iterable[str] = ()) -> None: ...

    def note_unreachable(self, address: str) -> None: ...


class TransactionGate(Protocol):
    """What a transactional producer's sender asks its transaction manager."""

    def may_send(self, tp: TopicPartition) -> bool:
        """The partition was added to the open transaction (AddPartitionsToTxn answered)."""
        ...

    @property
    def ending(self) -> bool:
        """The transaction is being aborted: failed attempts are not retried."""
        ...

    def batch_failed(self, batch: ProducerBatch, error: RaftkaError) -> RaftkaError:
        """A batch of the transaction failed for good: returns what its records fail with."""
        ...


class Sender:
    def __init__(
        self,
        config: ProducerConfig,
        accumulator: RecordAccumulator,
        leaders: Leaders,
        produce_for: Callable[[str], ProduceRawCall],
        init_producer_id: InitProducerId | None,
        clock: Callable[[], float] = time.monotonic,
        *,
        gate: TransactionGate | None = None,
        sequences: Sequences | None = None,
        metrics: ProducerMetrics | None = None,
    ) -> None:
        """With ``gate`` (a transactional producer) the producer id comes from the transaction
        manager, which sets it in ``sequences`` (shared with it), not from
        ``init_producer_id``, and a partition's batches wait until the gate lets them go."""
        self._config = config
        self.metrics = metrics if metrics is not None else ProducerMetrics()
        self._acc = accumulator
        self._leaders = leaders
        self._produce_for = produce_for
        self._init_producer_id = init_producer_id
        self._gate = gate
        if sequences is None and (init_producer_id is not None or gate is not None):
            sequences = Sequences()
        self.sequences = sequences
        self._clock = clock
        self._retry = RetryPolicy(
            config.retry_backoff_ms / 1000, config.retry_backoff_max_ms / 1000
        )
        self.in_flight = InFlight()
        self._tasks: set[asyncio.Task[None]] = set()
        self._refreshing: asyncio.Task[None] | None = None
        self._metadata_refreshed = False
        """A refresh this sender asked for finished: look for batches to move to new leaders."""
        self.stalls_seen = 0
        """Stall checks of requests unanswered past STALL_AFTER_S (each one noted the
        leader as unreachable for metadata requests)."""
        self._reset_needed = False
        self.fatal: RaftkaError | None = None
        self.throttle = ThrottleStats()
        """The brokers' quota throttle times seen in Produce answers."""

    @property
    def requests_in_flight(self) -> int:
        return self.in_flight.requests

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Until the producer closes and everything queued is answered."""
        while True:
            self._acc.wakeup.clear()
            now = self._clock()
            self._expire(now)
            wait = 0.1
            if self.fatal is not None:
                self._fail_queued(self.fatal)
            elif self.sequences is not None and (not self.sequences.has_id or self._reset_needed):
                if self._gate is None and self.requests_in_flight == 0:
                    wait = await self._take_new_producer_id()
            else:
                if self.in_flight.attempts:
                    self._watch_stalls(now)
                ready, next_check = self._acc.ready(
                    now, None if self._config.linger_when_idle else self._leader_idle
                )
                self._send_ready(ready)
                wait = min(next_check, 0.1 if self._acc.has_queued else 1.0)
            if self.in_flight.attempts:
                wait = min(wait, self.in_flight.next_check(now))
            if self._acc.closing and not self._acc.has_queued and not self.requests_in_flight:
                return
            await self._acc.wakeup.wait(max(wait, 0.0005))

    def _leader_idle(self, tp: TopicPartition) -> bool:
        """Nothing of this producer is in flight to the partition's leader: a batch for it
        goes at once instead of lingering (the accumulator's idle rule)."""
        address = self._leaders.leader_address(tp.topic, tp.partition)
        return address is not None and self.in_flight.to_leader(address) == 0

    def _watch_stalls(self, now: float) -> None:
        """Refresh metadata for requests unanswered too long; after a refresh, move batches
        whose partition has a new leader off their old one (in_flight.py says why)."""
        if self._metadata_refreshed:
            self._metadata_refreshed = False
            self._move_to_new_leaders()
        stalled = list(self.in_flight.stalled(now))
        if stalled:
            for attempt in stalled:
                # Ask the other brokers for metadata first: this one may be frozen.
                self._leaders.note_unreachable(attempt.address)
                self.stalls_seen += 1
            self._refresh({b.tp.topic for a in stalled for b in a.live_batches})

    def _move_to_new_leaders(self) -> None:
        moved: list[tuple[ProducerBatch, str]] = []
        for attempt in list(self.in_flight.attempts):
            for batch in attempt.live_batches:
                tp = batch.tp
                address = self._leaders.leader_address(tp.topic, tp.partition)
                if (
                    address is not None
                    and address != attempt.address
                    and self._leaders.leader_epoch(tp.topic, tp.partition) > attempt.epochs[tp]
                ):
                    self.in_flight.abandon(attempt, batch)
                    moved.append((batch, address))
        # Requeued in sequence order, so each partition's retries keep their order.
        for batch, address in sorted(moved, key=lambda m: m[0].sequence):
            log.info(
                "produce_moved_to_new_leader",
                partition=str(batch.tp),
                sequence=batch.sequence,
                leader=address,
            )
            error = PartitionError(
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"the leadership moved to {address} while the request waited for an answer",
                batch.tp.topic,
                batch.tp.partition,
            )
            self._attempt_failed(batch, error, maybe_written=True, retry_now=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._refreshing is not None:
            self._refreshing.cancel()
            await asyncio.gather(self._refreshing, return_exceptions=True)

    def _send_ready(self, ready: list[TopicPartition]) -> None:
        limit = self._config.max_in_flight_requests_per_connection
        requests: dict[str, list[ProducerBatch]] = {}
        sizes: dict[str, int] = {}
        stale: set[str] = set()
        for tp in ready:
            address = self._leaders.leader_address(tp.topic, tp.partition)
            if address is None:
                stale.add(tp.topic)
                continue
            if self.in_flight.to_leader(address) >= limit:
                continue
            if self._gate is not None and not self._gate.may_send(tp):
                continue  # not in the transaction yet: AddPartitionsToTxn is on its way
            head = self._acc.head(tp)
            if head is None:
                continue
            if head.attempts > 0 and self.in_flight.of_partition(tp) > 0:
                continue  # a retry goes alone, once the partition's earlier requests are answered
            if self.in_flight.retrying(tp):
                continue  # and nothing follows it until it is answered
            if sizes.get(address, 0) and sizes[address] + head.size > self._config.max_request_size:
                continue
            batch = self._acc.pop(tp)
            if batch.payload is None:
                batch.close()
            if self.sequences is not None and batch.sequence < 0:
                self.sequences.stamp(batch)
            requests.setdefault(address, []).append(batch)
            sizes[address] = sizes.get(address, 0) + len(batch.payload or b"")
        now = self._clock()
        for address, batches in requests.items():
            epochs = {b.tp: self._leaders.leader_epoch(b.tp.topic, b.tp.partition) for b in batches}
            attempt = ProduceAttempt(address, batches, epochs, now)
            for b in batches:
                b.attempts += 1
                if b.attempts == 1:
                    self.metrics.first_send(b.record_count, len(b.payload or b""), now - b.created)
            self.in_flight.start(attempt)
            task = asyncio.create_task(self._send(attempt))
            attempt.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if stale:
            self._refresh(stale)

    async def _send(self, attempt: ProduceAttempt) -> None:
        address, batches = attempt.address, attempt.batches
        request = self._request(batches)
        try:
            response: pb.ProduceResponse = await self._produce_for(address)(
                request, timeout=self._config.request_timeout_ms / 1000 + ANSWER_MARGIN_S
            )
        except grpc.aio.AioRpcError as e:
            error = error_from_rpc(e, address)
            self._leaders.note_unreachable(address)
            self._refresh({b.tp.topic for b in batches})
            live = attempt.live_batches
            self.in_flight.release(attempt)
            for b in live:
                self._attempt_failed(b, error, maybe_written=True)
        else:
            self.throttle.note(response.throttle_time_ms, address, "Produce")
            results = {(r.topic, r.partition): r for r in response.results}
            live = attempt.live_batches
            self.in_flight.release(attempt)
            for b in live:
                result = results.get(b.tp)
                if result is None:
                    self._attempt_failed(
                        b, RaftkaError(f"{b.tp}: the broker's answer left it out"), True
                    )
                else:
                    self._handle(b, result)
        finally:
            self.in_flight.release(attempt)
            self._acc.wakeup.set()

    def _request(self, batches: list[ProducerBatch]) -> bytes:
        """The Produce request's bytes, each batch copied once into them."""
        topics: dict[str, list[tuple[int, bytes | bytearray | memoryview]]] = {}
        for b in batches:
            topics.setdefault(b.tp.topic, []).append((b.tp.partition, b.payload or b""))
        return encode_produce_request(
            self._config.acks_value,
            self._config.request_timeout_ms,
            self._config.transactional_id or "",
            topics.items(),
        )

    # ------------------------------------------------------------------ answers

    def _handle(self, batch: ProducerBatch, result: pb.PartitionProduceResult) -> None:
        code = result.error_code
        if code == ErrorCode.NONE or (
            code == ErrorCode.DUPLICATE_SEQUENCE_NUMBER and result.base_offset >= 0
        ):
            self._succeeded(batch, result.base_offset, result.log_append_time_ms)
            return
        error = PartitionError(code, result.error_message, batch.tp.topic, batch.tp.partition)
        if code == ErrorCode.INVALID_PRODUCER_EPOCH and self._gate is not None:
            # A transactional producer learns whether it was fenced from its coordinator
            # (KIP-588): here it only dooms the transaction.
            self._failed(batch, error)
            return
        if code in (ErrorCode.INVALID_PRODUCER_EPOCH, ErrorCode.PRODUCER_FENCED):
            self.fatal = ProducerFencedError(
                f"producer id {batch.producer_id} was fenced by a newer epoch ({error.message}): "
                "close() this producer; a new one gets a fresh producer id"
            )
            self._failed(batch, self.fatal)
            return
        if code in SEQUENCE_ERRORS and self.sequences is not None:
            if not self.sequences.is_first_unacked(batch):
                # An earlier batch of the partition is being retried: this one follows it.
                self._attempt_failed(batch, error, maybe_written=False, force_retry=True)
                return
            self._failed(batch, error)
            return
        if error.refresh_metadata:
            self._refresh({batch.tp.topic})
        self._attempt_failed(batch, error, maybe_written=code in MAYBE_WRITTEN)

    def _attempt_failed(
        self,
        batch: ProducerBatch,
        error: RaftkaError,
        maybe_written: bool,
        *,
        force_retry: bool = False,
        retry_now: bool = False,
    ) -> None:
        batch.maybe_written = batch.maybe_written or maybe_written
        batch.last_error = error.message
        now = self._clock()
        expired = now - batch.created >= self._config.delivery_timeout_ms / 1000
        retriable = force_retry or error.retriable
        if (
            retriable
            and not expired
            and batch.attempts <= self._config.retries
            and not self._acc.aborted
            and not (self._gate is not None and self._gate.ending)
        ):
            batch.retry_at = now if retry_now else now + self._retry.backoff(batch.attempts)
            self._acc.requeue(batch)
            self.metrics.retries += 1
            log.debug(
                "produce_retry",
                partition=str(batch.tp),
                attempt=batch.attempts,
                error=error.message,
            )
            return
        if expired:
            error = delivery_timeout_error(batch, self._config.delivery_timeout_ms)
        self._failed(batch, error)

    def _succeeded(self, batch: ProducerBatch, base_offset: int, log_append_time_ms: int) -> None:
        if self.sequences is not None:
            self.sequences.acknowledged(batch)
        batch.complete(base_offset, log_append_time_ms)
        self._acc.finished(batch)

    def _failed(self, batch: ProducerBatch, error: RaftkaError) -> None:
        self.metrics.record_errors += batch.record_count
        if self._gate is not None:
            # The transaction cannot commit now; its abort bumps the epoch, which restarts
            # every sequence, so no renumbering here.
            if self.sequences is not None:
                self.sequences.acknowledged(batch)
            batch.fail(self._gate.batch_failed(batch, error))
            self._acc.finished(batch)
            return
        if self.sequences is not None and batch.sequence >= 0:
            # The partition's numbering now has a hole: renumber under a new producer id.
            self.sequences.acknowledged(batch)
            self._reset_needed = True
        batch.fail(error)
        self._acc.finished(batch)

    def _expire(self, now: float) -> None:
        """Fail queued batches past delivery_timeout_ms: never sent, or waiting for a retry
        after attempts that may have been written (the error says which)."""
        for batch in list(self._acc.expired(now)):
            self._failed(batch, delivery_timeout_error(batch, self._config.delivery_timeout_ms))

    def _fail_queued(self, error: RaftkaError) -> None:
        for batch in list(self._acc.drain_all()):
            batch.fail(error)
            self._acc.finished(batch)

    # ------------------------------------------------------------------ producer ids

    async def _take_new_producer_id(self) -> float:
        """Get a (new) producer id; renumber or fail what was numbered under the old one.
        Returns how long to wait before the loop goes on."""
        assert self.sequences is not None and self._init_producer_id is not None
        try:
            producer_id, epoch = await self._init_producer_id()
        except AuthenticationFailedError as e:
            # Fail what waits (as Kafka does) instead of retrying forever; later sends try again.
            log.warning("init_producer_id_failed", error=e.message)
            self._fail_queued(e)
            return self._retry.backoff(2)
        except RaftkaError as e:
            log.warning("init_producer_id_failed", error=e.message)
            return self._retry.backoff(2)
        resetting = self.sequences.has_id
        for batch in self._acc.queued_batches():
            if batch.sequence < 0:
                continue
            if batch.maybe_written:
                self._acc.remove(batch)
                batch.fail(
                    RequestTimedOutError(
                        f"{batch.tp}: outcome unknown: an earlier attempt may have been written, "
                        "and the producer had to renumber its batches after a failure"
                    )
                )
                self._acc.finished(batch)
            else:
                batch.stamp(-1, -1, -1)
                batch.sequence = -1
        self.sequences.set_id(producer_id, epoch)
        self._reset_needed = False
        if resetting:
            log.info("producer_id_reset", producer_id=producer_id, epoch=epoch)
        return 0.0

    def _refresh(self, topics: set[str]) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            return

        async def refresh() -> None:
            with contextlib.suppress(RaftkaError):
                await self._leaders.refresh(topics)
            self._metadata_refreshed = True
            self._acc.wakeup.set()

        self._refreshing = asyncio.create_task(refresh())
