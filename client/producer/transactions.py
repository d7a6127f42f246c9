"""The transaction manager of a transactional producer (KIP-98, with KIP-890's epoch bump on
every EndTxn): its state, and the calls to the transaction coordinator.

    UNINITIALIZED --init_transactions--> READY --begin--> IN_TRANSACTION
    IN_TRANSACTION --commit--> READY (new epoch)      --abort--> READY (new epoch)
    IN_TRANSACTION --a record or offset commit failed--> ABORTABLE --abort--> READY
    any --fenced, or a coordinator refusal nothing can fix--> FATAL (only close() helps)

Calls out of order raise InvalidTxnStateError at once, with nothing sent. Before the first
batch of a partition is sent in a transaction, the partition is added with AddPartitionsToTxn
(batched: every partition that got its first record meanwhile goes in one request); the
sender holds that partition's batches until the answer (``may_send``). commit flushes, then
ends the transaction with EndTxn; abort drops what is unsent, waits for what is in flight,
then ends it. Both adopt the (producer id, epoch) EndTxn returns, so sequences restart at 0.
A transaction that added nothing at the coordinator ends locally, without EndTxn. The RPCs
themselves (and their retries) are in txn_calls.py; what their failures mean, in errors.py.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import structlog

from raftka.client.connections import BrokerConnections
from raftka.client.producer.accumulator import RecordAccumulator
from raftka.client.producer.batch import ProducerBatch
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.errors import (
    AbortableTransactionError,
    ProducerFatalError,
    classify_coordinator_failure,
    classify_send_failure,
)
from raftka.client.producer.sequences import Sequences
from raftka.client.producer.txn_calls import GroupMetadata, TxnCalls
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import txn_errors
from raftka.common.errors import RaftkaError, RequestTimedOutError
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

T = TypeVar("T")


class State(enum.Enum):
    UNINITIALIZED = "uninitialized"
    INITIALIZING = "initializing"
    READY = "ready"
    IN_TRANSACTION = "in transaction"
    COMMITTING = "committing"
    ABORTING = "aborting"
    ABORTABLE = "abortable error"
    FATAL = "fatal error"


class TransactionManager:
    def __init__(
        self,
        config: ProducerConfig,
        connections: BrokerConnections,
        brokers: Callable[[], list[str]],
        accumulator: RecordAccumulator,
        sequences: Sequences,
        set_fatal: Callable[[RaftkaError], None],
    ) -> None:
        assert config.transactional_id is not None
        self.transactional_id = config.transactional_id
        self._config = config
        self._calls = TxnCalls(config, connections, brokers)
        self._acc = accumulator
        self._sequences = sequences
        self._set_fatal = set_fatal
        self.state = State.UNINITIALIZED
        self.error: RaftkaError | None = None
        """Why the state is ABORTABLE or FATAL."""
        self._added: set[TopicPartition] = set()
        self._pending: set[TopicPartition] = set()
        self._adding: asyncio.Task[None] | None = None
        self._started = False
        """Something of this transaction reached the coordinator (so EndTxn is due)."""
        self._maybe_started = False
        """An add call ended without a clear answer: the coordinator may have started it."""

    # ------------------------------------------------------------------ the sender's gate

    def may_send(self, tp: TopicPartition) -> bool:
        return tp in self._added and self.state in (State.IN_TRANSACTION, State.COMMITTING)

    @property
    def ending(self) -> bool:
        return self.state in (State.ABORTING, State.ABORTABLE, State.FATAL)

    def batch_failed(self, batch: ProducerBatch, error: RaftkaError) -> RaftkaError:
        doing = f"sending {batch.record_count} record(s) to {batch.tp}"
        if self.state is State.ABORTING:
            return _aborted(batch.tp)
        failure = classify_send_failure(error, doing)
        self._fail(failure)
        return failure

    # ------------------------------------------------------------------ the user's calls

    async def init_transactions(self) -> None:
        """Get the producer id and epoch for the transactional id (fencing older instances,
        whose open transaction the coordinator aborts first)."""
        if self.state is not State.UNINITIALIZED:
            self._check_usable()
            raise txn_errors.InvalidTxnStateError(
                f"init_transactions() was already called (the producer is {self.state.value}): "
                "call it once, right after creating the producer"
            )
        self.state = State.INITIALIZING
        try:
            producer_id, epoch = await self._run(
                self._calls.init_producer_id(), "init_transactions()"
            )
        except ProducerFatalError:
            raise
        except RaftkaError:
            self.state = State.UNINITIALIZED  # a timeout: it may be called again
            raise
        self._sequences.set_id(producer_id, epoch)
        self.state = State.READY
        log.info(
            "transactions_initialized",
            transactional_id=self.transactional_id,
            producer_id=producer_id,
            epoch=epoch,
        )

    def begin_transaction(self) -> None:
        self._check_usable()
        if self.state is not State.READY:
            raise txn_errors.InvalidTxnStateError(self._out_of_order("begin_transaction()"))
        self.state = State.IN_TRANSACTION
        self._added.clear()
        self._pending.clear()
        self._started = False

    def before_send(self, tp: TopicPartition) -> None:
        """send() is about to queue a record for ``tp``: check the state, and add the
        partition to the transaction if it is its first record there."""
        self._check_usable()
        if self.state is State.ABORTABLE:
            assert self.error is not None
            raise self.error
        if self.state is not State.IN_TRANSACTION:
            raise txn_errors.InvalidTxnStateError(self._out_of_order("send()"))
        if tp in self._added or tp in self._pending:
            return
        self._pending.add(tp)
        if self._adding is None or self._adding.done():
            self._adding = asyncio.create_task(self._add_partitions(), name="txn-add-partitions")

    async def send_offsets_to_transaction(
        self,
        offsets: Mapping[TopicPartition, OffsetAndMetadata | int],
        group_metadata: GroupMetadata,
    ) -> None:
        """Commit a consumer group's offsets as part of the transaction: AddOffsetsToTxn at
        the transaction coordinator, then TxnOffsetCommit at the group's coordinator."""
        self._check_usable()
        if self.state is State.ABORTABLE:
            assert self.error is not None
            raise self.error
        if self.state is not State.IN_TRANSACTION:
            raise txn_errors.InvalidTxnStateError(
                self._out_of_order("send_offsets_to_transaction()")
            )
        if not offsets:
            return
        group_id = group_metadata.group_id
        pid, epoch = self._sequences.producer_id, self._sequences.producer_epoch
        doing = f"send_offsets_to_transaction(group {group_id!r})"
        self._maybe_started = True
        await self._run(self._calls.add_offsets(pid, epoch, group_id), doing)
        self._started = True
        as_meta = {
            tp: o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(int(o))
            for tp, o in offsets.items()
        }
        await self._run(self._calls.txn_offset_commit(pid, epoch, group_metadata, as_meta), doing)

    async def commit_transaction(self, flush: Callable[[], Awaitable[None]]) -> None:
        """Flush, then commit (EndTxn); raises AbortableTransactionError if a record failed."""
        self._check_usable()
        if self.state is State.ABORTABLE:
            assert self.error is not None
            raise self.error
        if self.state not in (State.IN_TRANSACTION, State.COMMITTING):
            raise txn_errors.InvalidTxnStateError(self._out_of_order("commit_transaction()"))
        self.state = State.COMMITTING
        await self._settle_adds()
        await flush()
        if self.state is not State.COMMITTING:  # a record failed while flushing
            self._check_usable()
            assert self.error is not None
            raise self.error
        await self._end(committed=True)

    async def abort_transaction(self) -> None:
        """Drop what is unsent, wait for requests in flight, then abort (EndTxn)."""
        self._check_usable()
        if self.state not in (State.IN_TRANSACTION, State.ABORTABLE, State.ABORTING):
            raise txn_errors.InvalidTxnStateError(self._out_of_order("abort_transaction()"))
        self.state = State.ABORTING
        if self._adding is not None:
            await asyncio.gather(self._adding, return_exceptions=True)
        for batch in list(self._acc.drain_all()):
            batch.fail(_aborted(batch.tp))
            self._acc.finished(batch)
        in_flight = [b.settled_future() for b in list(self._acc.incomplete)]
        await asyncio.gather(*in_flight, return_exceptions=True)
        self._check_usable()
        await self._end(committed=False)

    async def close(self) -> None:
        """The producer is closing: stop adding partitions (an open transaction is left to
        the coordinator, which aborts it at its timeout or when the id is initialized again)."""
        await cancel_and_wait([self._adding])

    # ------------------------------------------------------------------ internals

    async def _end(self, *, committed: bool) -> None:
        doing = "commit_transaction()" if committed else "abort_transaction()"
        if self._started or self._maybe_started:
            # Only an add call without a clear answer: the coordinator may know of nothing.
            unsure = () if self._started else (txn_errors.InvalidTxnStateError,)
            end = self._calls.end_txn(
                self._sequences.producer_id, self._sequences.producer_epoch, committed
            )
            try:
                # A timeout leaves the state as it is: the same call may be made again (an
                # EndTxn retried with the same epoch gets the same answer).
                producer_id, epoch = await self._run(end, doing, accept=unsure)
            except txn_errors.InvalidTxnStateError:
                log.info("transaction_was_not_open", transactional_id=self.transactional_id)
            else:
                self._sequences.set_id(producer_id, epoch)
        log.info(
            "transaction_committed" if committed else "transaction_aborted",
            transactional_id=self.transactional_id,
            partitions=len(self._added),
            producer_id=self._sequences.producer_id,
            epoch=self._sequences.producer_epoch,
        )
        self.state = State.READY
        self.error = None
        self._added.clear()
        self._pending.clear()
        self._started = False
        self._maybe_started = False

    async def _add_partitions(self) -> None:
        while self._pending and self.state in (State.IN_TRANSACTION, State.COMMITTING):
            batch = sorted(self._pending)
            self._maybe_started = True
            doing = f"adding {len(batch)} partition(s) to the transaction"
            pid, epoch = self._sequences.producer_id, self._sequences.producer_epoch
            try:
                await self._run(self._calls.add_partitions(pid, epoch, batch), doing)
            except RaftkaError as e:
                # Out of time, too: the records of these partitions can never be sent.
                self._fail(classify_send_failure(e, doing))
                return
            self._started = True
            self._pending.difference_update(batch)
            self._added.update(batch)
            log.debug("txn_partitions_added", partitions=[str(tp) for tp in batch])
            self._acc.wakeup.set()

    async def _settle_adds(self) -> None:
        if self._adding is not None:
            await asyncio.gather(self._adding, return_exceptions=True)

    def _fail(self, failure: RaftkaError) -> None:
        """The transaction (abortable) or the producer (fatal) cannot go on: queued batches
        fail at once (nothing more of this transaction is sent)."""
        if self.state is State.FATAL:
            return
        if isinstance(failure, ProducerFatalError):
            self.state, self.error = State.FATAL, failure
            self._set_fatal(failure)
            log.warning(
                "transactional_producer_fatal",
                transactional_id=self.transactional_id,
                error=failure.message,
            )
        elif self.state is State.ABORTING:
            return
        elif self.state is not State.ABORTABLE:
            self.state, self.error = State.ABORTABLE, failure
            log.info(
                "transaction_abortable",
                transactional_id=self.transactional_id,
                error=failure.message,
            )
        for batch in list(self._acc.drain_all()):
            batch.fail(failure)
            self._acc.finished(batch)

    async def _run(
        self, call: Awaitable[T], doing: str, *, accept: tuple[type[RaftkaError], ...] = ()
    ) -> T:
        """Await a call of the transaction (already retried until max_block_ms): a failure
        that ends the transaction or the producer changes the state; one that only ran out
        of time is a RequestTimedOutError saying to call again (``accept``: the caller's)."""
        try:
            return await call
        except accept:
            raise
        except RaftkaError as e:
            failure = classify_coordinator_failure(e, doing)
            if isinstance(failure, (ProducerFatalError, AbortableTransactionError)):
                self._fail(failure)
            else:  # retriable: it was retried until the deadline
                failure = RequestTimedOutError(
                    f"{doing}: no answer from the coordinator within "
                    f"max_block_ms={self._config.max_block_ms} ({e.message}); call it again"
                )
            raise failure from e

    def _check_usable(self) -> None:
        if self.state is State.FATAL:
            assert self.error is not None
            raise self.error
        if self.state is State.UNINITIALIZED or self.state is State.INITIALIZING:
            raise txn_errors.InvalidTxnStateError(
                f"transactional id {self.transactional_id!r}: call init_transactions() "
                "(once) before any transactional call"
            )

    def _out_of_order(self, call: str) -> str:
        hint = {
            State.READY: "call begin_transaction() first",
            State.IN_TRANSACTION: "a transaction is already open: commit or abort it first",
            State.COMMITTING: "the transaction is being committed: call commit_transaction() "
            "again to finish it",
            State.ABORTING: "the transaction is being aborted: call abort_transaction() again "
            "to finish it",
        }.get(self.state, "")
        return (
            f"{call} is not allowed now (transactional id {self.transactional_id!r} is "
            f"{self.state.value}): {hint}; nothing was sent"
        )


def _aborted(tp: TopicPartition) -> AbortableTransactionError:
    return AbortableTransactionError(
        f"{tp}: not written: the transaction was aborted before this record was sent"
    )
