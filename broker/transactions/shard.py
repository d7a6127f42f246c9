"""TransactionShard: the sans-I/O coordinator of the transactional ids of one
``__transaction_state`` partition (the TxnShard protocol of ``api.py``).

Every change is written as a record through one ``RecordBatch``, which applies it with the
replay code, so a shard rebuilt from the log has the same state as the live one. Nothing else
is kept: marker jobs are a function of the Prepare* states, timers of the stored times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from raftka.broker.transactions import admin, transitions
from raftka.broker.transactions.api import (
    InitProducerIdResult,
    MarkerJob,
    StoredRecord,
    TopicPartition,
    TxnConfig,
    TxnOutcome,
)
from raftka.broker.transactions.fencing import check_current, is_end_retry, is_init_retry
from raftka.broker.transactions.records import decode
from raftka.broker.transactions.state import TransactionMetadata, TxnState
from raftka.broker.transactions.store import RecordBatch, TxnStore
from raftka.broker.transactions.validation import (
    check_config,
    check_partitions,
    check_transactional_id,
    resolve_timeout,
)
from raftka.common.errors import InvalidRequestError
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    TransactionAbortableError,
)
from raftka.v1 import transactions_pb2 as tpb

log = structlog.get_logger(__name__)

_NO_RESULT = InitProducerIdResult(-1, -1)


def _concurrent(transactional_id: str, meta: TransactionMetadata) -> ConcurrentTransactionsError:
    return ConcurrentTransactionsError(
        f"transactional id {transactional_id!r} is completing its previous transaction "
        f"({meta.state.display_name}): retry shortly"
    )


def _unknown(transactional_id: str) -> InvalidProducerIdMappingError:
    return InvalidProducerIdMappingError(
        f"transactional id {transactional_id!r} is not known to its coordinator (never "
        f"initialised, or expired): call InitProducerId (init_transactions) first"
    )


class TransactionShard:
    """The transactional ids of ``__transaction_state`` partition ``partition``, loaded in
    ``coordinator_epoch`` (that partition's leader epoch here)."""

    def __init__(self, partition: int, coordinator_epoch: int, config: TxnConfig) -> None:
        check_config(config)
        self.partition = partition
        self.config = config
        self.store = TxnStore()
        self._coordinator_epoch = coordinator_epoch

    @property
    def coordinator_epoch(self) -> int:
        return self._coordinator_epoch

    # ---- loading ----

    def replay(self, record: StoredRecord) -> None:
        self.store.apply(decode(record))

    def loaded(self, now_ms: int) -> list[MarkerJob]:
        """The marker jobs of every decided transaction (the previous coordinator may have
        died before writing all its markers; writing one twice is harmless)."""
        jobs = [
            self._job(tid, meta)
            for tid, meta in sorted(self.store.ids.items())
            if meta.state.is_prepare
        ]
        log.info(
            "txn_shard_loaded",
            partition=self.partition,
            coordinator_epoch=self._coordinator_epoch,
            transactional_ids=len(self.store.ids),
            marker_jobs=len(jobs),
            now_ms=now_ms,
        )
        return jobs

    def _job(self, transactional_id: str, meta: TransactionMetadata) -> MarkerJob:
        return MarkerJob(
            transactional_id=transactional_id,
            producer_id=meta.producer_id,
            producer_epoch=meta.producer_epoch,
            committed=transitions.is_commit(meta.state),
            coordinator_epoch=self._coordinator_epoch,
            partitions=meta.partitions,
        )

    def _abort_ongoing(
        self, batch: RecordBatch, transactional_id: str, meta: TransactionMetadata, now_ms: int
    ) -> MarkerJob:
        batch.write(transactional_id, transitions.abort_started(meta, now_ms))
        decided = self.store.ids[transactional_id]
        return self._job(transactional_id, decided)

    # ---- the producer's calls ----

    def init_producer_id(
        self,
        transactional_id: str,
        *,
        timeout_ms: int,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        expected: tuple[int, int] | None = None,
    ) -> TxnOutcome[InitProducerIdResult]:
        check_transactional_id(transactional_id)
        timeout = resolve_timeout(timeout_ms, self.config)
        meta = self.store.get(transactional_id)
        batch = RecordBatch(self.store)
        if meta is not None and expected is not None:  # KIP-360: the producer names itself
            if meta.state.is_prepare:
                raise _concurrent(transactional_id, meta)
            if is_init_retry(meta, *expected):
                return TxnOutcome(InitProducerIdResult(meta.producer_id, meta.producer_epoch))
            check_current(transactional_id, meta, *expected)
        if meta is None:
            batch.write(transactional_id, transitions.new_id(fresh_producer_id(), timeout, now_ms))
        elif meta.state.is_prepare:
            raise _concurrent(transactional_id, meta)
        elif meta.state is TxnState.ONGOING:
            job = self._abort_ongoing(batch, transactional_id, meta, now_ms)
            log.info(
                "txn_fenced_by_init",
                transactional_id=transactional_id,
                producer_id=meta.producer_id,
                fenced_epoch=meta.producer_epoch,
                partitions=len(meta.partitions),
            )
            return TxnOutcome(
                _NO_RESULT,
                tuple(batch.records),
                (job,),
                error=ConcurrentTransactionsError(
                    f"transactional id {transactional_id!r} had a transaction open (producer "
                    f"epoch {meta.producer_epoch}): it is being aborted; retry InitProducerId "
                    f"shortly"
                ),
            )
        else:
            batch.write(
                transactional_id,
                transitions.reinitialised(
                    meta, timeout, now_ms, fresh_producer_id, remember_epoch=expected is not None
                ),
            )
        now = self.store.ids[transactional_id]
        return TxnOutcome(
            InitProducerIdResult(now.producer_id, now.producer_epoch), tuple(batch.records)
        )

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
        *,
        now_ms: int,
    ) -> TxnOutcome[None]:
        check_transactional_id(transactional_id)
        check_partitions(partitions)
        meta = self._known(transactional_id)
        check_current(transactional_id, meta, producer_id, producer_epoch)
        if meta.state.is_prepare:
            raise _concurrent(transactional_id, meta)
        added = frozenset(partitions)
        if meta.state is TxnState.ONGOING and added <= meta.partitions:
            return TxnOutcome(None)
        after = transitions.begun_or_extended(meta, added, now_ms)
        if len(after.partitions) > self.config.max_partitions_per_txn:
            raise InvalidRequestError(
                f"the transaction of {transactional_id!r} would hold {len(after.partitions)} "
                f"partitions: at most {self.config.max_partitions_per_txn}; commit it and go on "
                f"in a new one"
            )
        batch = RecordBatch(self.store)
        batch.write(transactional_id, after)
        return TxnOutcome(None, tuple(batch.records))

    def end_transaction(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        committed: bool,
        *,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        bump_epoch: bool = True,
    ) -> TxnOutcome[InitProducerIdResult]:
        check_transactional_id(transactional_id)
        meta = self._known(transactional_id)
        word = "commit" if committed else "abort"
        if meta.state is not TxnState.ONGOING and is_end_retry(meta, producer_id, producer_epoch):
            if transitions.is_commit(meta.state) != committed:
                raise InvalidTxnStateError(
                    f"EndTxn({word}) for {transactional_id!r}: its transaction was already "
                    f"decided the other way ({meta.state.display_name})"
                )
            if meta.state.is_prepare:
                raise _concurrent(transactional_id, meta)
            return TxnOutcome(InitProducerIdResult(meta.producer_id, meta.producer_epoch))
        check_current(transactional_id, meta, producer_id, producer_epoch)
        if meta.state.is_prepare:
            raise _concurrent(transactional_id, meta)
        batch = RecordBatch(self.store)
        markers: tuple[MarkerJob, ...] = ()
        if meta.state is TxnState.ONGOING:
            batch.write(
                transactional_id,
                transitions.prepared(
                    meta, committed, now_ms, fresh_producer_id, bump_epoch=bump_epoch
                ),
            )
            decided = self.store.ids[transactional_id]
            markers = (self._job(transactional_id, decided),)
            answer = decided.next_identity
        elif committed:
            raise InvalidTxnStateError(
                f"EndTxn(commit) for {transactional_id!r} with no transaction open "
                f"({meta.state.display_name}): add partitions and send before committing"
            )
        elif not bump_epoch:  # nothing to abort, and no epoch the producer would learn
            return TxnOutcome(InitProducerIdResult(meta.producer_id, meta.producer_epoch))
        else:
            batch.write(
                transactional_id, transitions.aborted_at_once(meta, now_ms, fresh_producer_id)
            )
            now = self.store.ids[transactional_id]
            answer = (now.producer_id, now.producer_epoch)
        return TxnOutcome(InitProducerIdResult(*answer), tuple(batch.records), markers)

    def _known(self, transactional_id: str) -> TransactionMetadata:
        meta = self.store.get(transactional_id)
        if meta is None:
            raise _unknown(transactional_id)
        return meta

    # ---- markers and timers ----

    def markers_written(self, job: MarkerJob, *, now_ms: int) -> TxnOutcome[None]:
        """Ignored (no record) unless ``job`` is the decision the id is still completing."""
        meta = self.store.get(job.transactional_id)
        if (
            meta is None
            or not meta.state.is_prepare
            or transitions.is_commit(meta.state) != job.committed
            or meta.producer_id != job.producer_id
            or meta.producer_epoch != job.producer_epoch
            or job.coordinator_epoch != self._coordinator_epoch
        ):
            log.info(
                "txn_marker_job_stale",
                transactional_id=job.transactional_id,
                producer_id=job.producer_id,
                producer_epoch=job.producer_epoch,
                job_coordinator_epoch=job.coordinator_epoch,
                coordinator_epoch=self._coordinator_epoch,
            )
            return TxnOutcome(None)
        batch = RecordBatch(self.store)
        batch.write(job.transactional_id, transitions.completed(meta, now_ms))
        return TxnOutcome(None, tuple(batch.records))

    def tick(self, *, now_ms: int) -> TxnOutcome[None]:
        batch = RecordBatch(self.store)
        jobs: list[MarkerJob] = []
        for tid in sorted(self.store.ids):
            meta = self.store.ids[tid]
            if meta.state is TxnState.ONGOING and meta.start_time_ms + meta.timeout_ms <= now_ms:
                log.info(
                    "txn_timed_out",
                    transactional_id=tid,
                    producer_id=meta.producer_id,
                    producer_epoch=meta.producer_epoch,
                    started_ms=meta.start_time_ms,
                    timeout_ms=meta.timeout_ms,
                )
                jobs.append(self._abort_ongoing(batch, tid, meta, now_ms))
            elif (
                meta.state.is_idle and meta.last_update_ms + self.config.id_expiration_ms <= now_ms
            ):
                log.info("txn_id_expired", transactional_id=tid, idle_since_ms=meta.last_update_ms)
                batch.write(tid, None)
        return TxnOutcome(None, tuple(batch.records), tuple(jobs))

    def next_deadline_ms(self) -> int | None:
        deadlines = [
            meta.start_time_ms + meta.timeout_ms
            if meta.state is TxnState.ONGOING
            else meta.last_update_ms + self.config.id_expiration_ms
            for meta in self.store.ids.values()
            if meta.state is TxnState.ONGOING or meta.state.is_idle
        ]
        return min(deadlines, default=None)

    # ---- administration and checks ----

    def describe(self, transactional_id: str) -> tpb.TransactionDescription:
        return admin.describe(self.store, transactional_id)

    def list_transactions(
        self, request: tpb.ListTransactionsRequest
    ) -> list[tpb.ListedTransaction]:
        return admin.list_transactions(self.store, request)

    def transactional_ids(self) -> list[str]:
        return sorted(self.store.ids)

    def check_producer(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        *,
        partition: TopicPartition | None = None,
    ) -> None:
        meta = self._known(transactional_id)
        check_current(transactional_id, meta, producer_id, producer_epoch)
        if meta.state.is_prepare:
            raise _concurrent(transactional_id, meta)
        if meta.state is not TxnState.ONGOING:
            raise InvalidTxnStateError(
                f"transactional id {transactional_id!r} has no transaction open "
                f"({meta.state.display_name}): add the partition to a transaction first"
            )
        if partition is not None and partition not in meta.partitions:
            raise TransactionAbortableError(
                f"{partition[0]}-{partition[1]} is not in the transaction of "
                f"{transactional_id!r}: abort the transaction, then add it before writing"
            )
