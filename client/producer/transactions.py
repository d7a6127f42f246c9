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
A transaction that added nothing at the coordinator ends locally, without EndTxn.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, TypeVar

import structlog

from raftka.client.connections import BrokerConnections
from raftka.client.group_coordinator import (
    GroupCoordinator,
    commit_request,
    partition_errors,
)
from raftka.client.producer.accumulator import RecordAccumulator
from raftka.client.producer.batch import ProducerBatch
from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.errors import (
    AbortableTransactionError,
    ProducerFatalError,
    classify_coordinator_failure,
    classify_send_failure,
    item_error,
)
from raftka.client.producer.sequences import Sequences
from raftka.client.types import OffsetAndMetadata, TopicPartition
from raftka.common import txn_errors
from raftka.common.errors import RaftkaError, RequestTimedOutError
from raftka.common.rpc.retry import Deadline, RetryPolicy
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import broker_pb2 as pb
from raftka.v1 import groups_pb2 as gpb
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

T = TypeVar("T")


class GroupMetadata(Protocol):
    """A consumer's group identity (raftka.client.consumer's ConsumerGroupMetadata)."""

    @property
    def group_id(self) -> str: ...

    @property
    def member_id(self) -> str: ...

    @property
    def member_epoch(self) -> int: ...


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
        self._connections = connections
        self._brokers = brokers
        self._acc = accumulator
        self._sequences = sequences
        self._set_fatal = set_fatal
        self._retry = RetryPolicy(
            config.retry_backoff_ms / 1000, max(config.retry_backoff_max_ms / 1000, 0.001)
        )
        self._request_timeout_s = config.request_timeout_ms / 1000
        self.coordinator = GroupCoordinator(
            config.transactional_id,
            connections,
            brokers,
            request_timeout_s=self._request_timeout_s,
            retry=self._retry,
            key_type=gpb.COORDINATOR_TYPE_TRANSACTION,
        )
        self._group_coordinators: dict[str, GroupCoordinator] = {}
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
        request = pb.InitProducerIdRequest(
            transactional_id=self.transactional_id,
            transaction_timeout_ms=self._config.transaction_timeout_ms,
        )
        try:
            response: pb.InitProducerIdResponse = await self._call(
                lambda a: self._connections.stub(a).InitProducerId(
                    request, timeout=self._request_timeout_s
                ),
                "init_transactions()",
            )
        except ProducerFatalError:
            raise
        except RaftkaError:
            self.state = State.UNINITIALIZED  # a timeout: it may be called again
            raise
        self._sequences.set_id(int(response.producer_id), int(response.producer_epoch))
        self.state = State.READY
        log.info(
            "transactions_initialized",
            transactional_id=self.transactional_id,
            producer_id=response.producer_id,
            epoch=response.producer_epoch,
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
        add = tpb.AddOffsetsToTxnRequest(
            transactional_id=self.transactional_id,
            producer_id=pid,
            producer_epoch=epoch,
            group_id=group_id,
        )
        doing = f"send_offsets_to_transaction(group {group_id!r})"
        self._maybe_started = True
        await self._guarded(
            self._call(
                lambda a: self._connections.txn_stub(a).AddOffsetsToTxn(
                    add, timeout=self._request_timeout_s
                ),
                doing,
            ),
            doing,
        )
        self._started = True
        as_meta = {
            tp: o if isinstance(o, OffsetAndMetadata) else OffsetAndMetadata(int(o))
            for tp, o in offsets.items()
        }
        plain = commit_request(
            group_id, group_metadata.member_id, group_metadata.member_epoch, as_meta
        )
        commit = gpb.TxnOffsetCommitRequest(
            transactional_id=self.transactional_id,
            group_id=group_id,
            producer_id=pid,
            producer_epoch=epoch,
            member_id=group_metadata.member_id,
            member_epoch=group_metadata.member_epoch if group_metadata.member_id else -1,
            topics=plain.topics,
        )
        coordinator = self._group_coordinator(group_id)
        response = await self._guarded(
            coordinator.call(
                lambda stub: stub.TxnOffsetCommit(commit, timeout=self._request_timeout_s),
                self._deadline(),
            ),
            doing,
        )
        refused = partition_errors(response.topics)
        if refused:
            tp, first = next(iter(sorted(refused.items())))
            failure = classify_coordinator_failure(first, f"{doing}: {tp}")
            self._fail(failure)
            raise failure

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
        in_flight = [f for b in list(self._acc.incomplete) for f in b.futures()]
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
            request = tpb.EndTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self._sequences.producer_id,
                producer_epoch=self._sequences.producer_epoch,
                committed=committed,
            )
            # A timeout leaves the state as it is: the same call may be made again (an EndTxn
            # retried with the same epoch gets the same answer).
            # Only an add call without a clear answer: the coordinator may know of nothing.
            unsure = () if self._started else (txn_errors.InvalidTxnStateError,)
            try:
                response: tpb.EndTxnResponse = await self._guarded(
                    self._call(
                        functools.partial(self._end_at, request=request), doing, accept=unsure
                    ),
                    doing,
                    accept=unsure,
                )
            except txn_errors.InvalidTxnStateError:
                log.info("transaction_was_not_open", transactional_id=self.transactional_id)
            else:
                self._sequences.set_id(int(response.producer_id), int(response.producer_epoch))
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

    async def _end_at(self, address: str, *, request: tpb.EndTxnRequest) -> tpb.EndTxnResponse:
        stub = self._connections.txn_stub(address)
        response: tpb.EndTxnResponse = await stub.EndTxn(request, timeout=self._request_timeout_s)
        return response

    async def _add_partitions(self) -> None:
        while self._pending and self.state in (State.IN_TRANSACTION, State.COMMITTING):
            batch = sorted(self._pending)
            topics: dict[str, list[int]] = {}
            for tp in batch:
                topics.setdefault(tp.topic, []).append(tp.partition)
            request = tpb.AddPartitionsToTxnRequest(
                transactional_id=self.transactional_id,
                producer_id=self._sequences.producer_id,
                producer_epoch=self._sequences.producer_epoch,
                topics=[tpb.TxnTopicPartitions(topic=t, partitions=ps) for t, ps in topics.items()],
            )
            self._maybe_started = True
            doing = f"adding {len(batch)} partition(s) to the transaction"
            try:
                await self._call(functools.partial(self._add_partitions_at, request=request), doing)
            except RaftkaError as e:
                failure = classify_coordinator_failure(e, doing)
                if not isinstance(failure, (ProducerFatalError, AbortableTransactionError)):
                    failure = classify_send_failure(failure, doing)  # out of time
                self._fail(failure)
                return
            self._started = True
            self._pending.difference_update(batch)
            self._added.update(batch)
            log.debug("txn_partitions_added", partitions=[str(tp) for tp in batch])
            self._acc.wakeup.set()

    async def _add_partitions_at(
        self, address: str, *, request: tpb.AddPartitionsToTxnRequest
    ) -> tpb.AddPartitionsToTxnResponse:
        """One AddPartitionsToTxn; a refusal in its answer is raised (every partition carries
        the same one: all or none are added), so CONCURRENT_TRANSACTIONS is retried."""
        stub = self._connections.txn_stub(address)
        response: tpb.AddPartitionsToTxnResponse = await stub.AddPartitionsToTxn(
            request, timeout=self._request_timeout_s
        )
        refused = [r for r in response.results if r.error_code != ErrorCode.NONE]
        if refused:
            first = refused[0]
            raise item_error(
                first.error_code, first.error_message, f"{first.topic}-{first.partition}"
            )
        return response

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

    async def _guarded(
        self, call: Awaitable[T], doing: str, *, accept: tuple[type[RaftkaError], ...] = ()
    ) -> T:
        """Await a call of the transaction; a failure that ends it changes the state (errors
        of ``accept`` types are the caller's)."""
        try:
            return await call
        except accept:
            raise
        except RaftkaError as e:
            failure = classify_coordinator_failure(e, doing)
            if isinstance(failure, (ProducerFatalError, AbortableTransactionError)):
                self._fail(failure)
            raise failure from e

    async def _call(
        self,
        rpc: Callable[[str], Awaitable[T]],
        doing: str,
        *,
        accept: tuple[type[RaftkaError], ...] = (),
    ) -> T:
        """``rpc(address)`` at the transaction coordinator, retried (coordinator moves,
        CONCURRENT_TRANSACTIONS) until max_block_ms; fatal answers make the producer fatal
        (errors of ``accept`` types are raised as they are)."""
        try:
            return await self.coordinator.call_at(
                rpc, self._deadline(), retry_here=(txn_errors.ConcurrentTransactionsError,)
            )
        except accept:
            raise
        except RaftkaError as e:
            failure = classify_coordinator_failure(e, doing)
            if isinstance(failure, ProducerFatalError):
                self._fail(failure)
                raise failure from e
            if failure is e and (e.retriable or isinstance(e, RequestTimedOutError)):
                raise RequestTimedOutError(
                    f"{doing}: no answer from the transaction coordinator within "
                    f"max_block_ms={self._config.max_block_ms} ({e.message}); call it again"
                ) from e
            raise failure from e

    def _deadline(self) -> Deadline:
        return Deadline(self._config.max_block_ms / 1000)

    def _group_coordinator(self, group_id: str) -> GroupCoordinator:
        found = self._group_coordinators.get(group_id)
        if found is None:
            found = self._group_coordinators[group_id] = GroupCoordinator(
                group_id,
                self._connections,
                self._brokers,
                request_timeout_s=self._request_timeout_s,
                retry=self._retry,
            )
        return found

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
