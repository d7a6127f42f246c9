"""The contract between a transaction shard (sans-I/O) and the runtime that drives it.

One :class:`TxnShard` holds the transactional ids of one ``__transaction_state`` partition this
broker leads, in the coordinator epoch it was loaded with (the partition's leader epoch). It
never does I/O and never reads a clock: every call gets ``now_ms``. A call that changes state
returns a :class:`TxnOutcome`: the records to append (the shard has already applied them), the
answer to send once they are committed, and the marker jobs to start once they are committed.
If the append fails the runtime drops the shard and loads it again from the log.

A call may also fail *after* writing: InitProducerId on an id with an Ongoing transaction
starts aborting it (a PrepareAbort record and a marker job) and must then answer
CONCURRENT_TRANSACTIONS. Such an outcome carries the error in ``TxnOutcome.error``: the runtime
appends ``records`` and starts ``markers`` as usual, then answers with ``error`` instead of
``response``. Every other refusal is raised, having changed nothing.

Markers: a :class:`MarkerJob` asks the runtime to write a COMMIT or ABORT marker on each of its
partitions (WriteTxnMarkers to each partition's leader, retried until every partition answers
NONE, or a fatal answer). The runtime reports the end with :meth:`TxnShard.markers_written`,
whose outcome records CompleteCommit / CompleteAbort. ``loaded`` returns the jobs of every
transaction found in PrepareCommit / PrepareAbort (a coordinator that died after its decision).

Producer ids: a call that may need a fresh producer id (InitProducerId for a new transactional
id, or an epoch overflow at EndTxn) gets one from the runtime in ``fresh_producer_id`` (a
callable; the runtime hands out ids from a block it already holds, so the call stays
synchronous).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from raftka.broker.coordinator.api import StoredRecord as StoredRecord  # of __transaction_state
from raftka.common.errors import RaftkaError
from raftka.common.metadata.topic_names import (  # one name, defined in common
    TRANSACTION_STATE_TOPIC as TRANSACTION_STATE_TOPIC,
)
from raftka.v1 import transactions_pb2 as tpb

R = TypeVar("R")


#: (topic, partition)
TopicPartition = tuple[str, int]

#: topic name -> partition count, for every topic in the broker's metadata image.
TopicsView = Mapping[str, int]


@dataclass(frozen=True, slots=True)
class MarkerJob:
    """Write ``committed`` markers for (producer_id, producer_epoch) on ``partitions``."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    committed: bool
    coordinator_epoch: int
    partitions: frozenset[TopicPartition]


@dataclass(frozen=True, slots=True)
class TxnOutcome(Generic[R]):
    """``error``: answer with it (after appending ``records`` and starting ``markers``) instead
    of ``response``, which is then a placeholder."""

    response: R
    records: Sequence[StoredRecord] = ()
    markers: Sequence[MarkerJob] = field(default_factory=tuple)
    error: RaftkaError | None = None


@dataclass(frozen=True, slots=True)
class InitProducerIdResult:
    producer_id: int
    producer_epoch: int


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """Coordinator settings (Kafka's names in comments)."""

    max_timeout_ms: int = 900_000  # transaction.max.timeout.ms
    default_timeout_ms: int = 60_000  # the producer's transaction.timeout.ms when it sends 0
    abort_timed_out_interval_ms: int = (
        10_000  # transaction.abort.timed.out.transaction.cleanup.interval.ms
    )
    id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms
    max_partitions_per_txn: int = 10_000


class TxnShard(Protocol):
    """What the runtime calls. Raises RaftkaError subclasses (common/txn_errors.py, and
    errors.InvalidRequestError) for refusals, having changed nothing."""

    @property
    def coordinator_epoch(self) -> int: ...

    def replay(self, record: StoredRecord) -> None: ...

    def loaded(self, now_ms: int) -> list[MarkerJob]:
        """Loading is over: the marker jobs of every transaction in Prepare* (to finish what
        the previous coordinator decided)."""
        ...

    def init_producer_id(
        self,
        transactional_id: str,
        *,
        timeout_ms: int,
        now_ms: int,
        fresh_producer_id: Callable[[], int],
        expected: tuple[int, int] | None = None,
    ) -> TxnOutcome[InitProducerIdResult]:
        """``expected``: the (producer id, epoch) the producer holds (KIP-360, a producer
        bumping its own epoch to recover): anything but the current identity is fenced (or a
        mapping error), except a retry of that same call, answered again unchanged.

        A new id: fresh producer id, epoch 0. A known id: epoch + 1 (a new producer id at
        overflow). An Ongoing transaction is first aborted (PrepareEpochFence / PrepareAbort
        with the bumped epoch, and a marker job): that outcome carries the records, the job
        and ``error=ConcurrentTransactionsError`` (the client retries, and once CompleteAbort
        is written the retry bumps the epoch again). Prepare*: ConcurrentTransactionsError
        raised."""
        ...

    def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partitions: Sequence[TopicPartition],
        *,
        now_ms: int,
    ) -> TxnOutcome[None]:
        """Empty / Complete* -> Ongoing (start time now); Ongoing: adds. Already all present:
        no record. Prepare*: ConcurrentTransactionsError."""
        ...

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
        """Ongoing -> PrepareCommit/PrepareAbort with epoch + 1 (KIP-890), a marker job; the
        response is the new (producer id, epoch). A retry with the pre-bump epoch after the
        decision: the same answer (Complete* of the same outcome) or
        ConcurrentTransactionsError (Prepare* of the same outcome); the opposite outcome:
        InvalidTxnStateError. Abort with nothing open (Empty / Complete*): bumps the epoch and
        completes at once (no markers); commit with nothing open: InvalidTxnStateError. After
        an abort the coordinator started itself (timeout, or InitProducerId fencing) the old
        epoch is fenced (ProducerFencedError), never answered as a retry. Past epoch 32766 the
        answer is a fresh producer id at epoch 0 (the markers carry 32767).

        ``bump_epoch=False`` is transaction version 1 (a Kafka client's EndTxn before v5,
        whose answer cannot carry a new epoch): the decision keeps the producer's epoch (the
        markers carry it, the producer goes on with it; a retry of EndTxn is recognised by
        that same epoch), and an abort with nothing open changes nothing."""
        ...

    def markers_written(self, job: MarkerJob, *, now_ms: int) -> TxnOutcome[None]:
        """Every partition of ``job`` has its marker: Prepare* -> Complete*. A job that is not
        the decision the id is completing (already completed, or from another coordinator
        epoch) writes nothing."""
        ...

    def tick(self, *, now_ms: int) -> TxnOutcome[None]:
        """Aborts Ongoing transactions older than their timeout (PrepareAbort with a bumped
        epoch, and a marker job); expires ids idle (Empty / Complete*) past
        id_expiration_ms (tombstones). Call it at ``next_deadline_ms`` or every
        abort_timed_out_interval_ms."""
        ...

    def next_deadline_ms(self) -> int | None: ...

    def describe(self, transactional_id: str) -> tpb.TransactionDescription: ...

    def list_transactions(
        self, request: tpb.ListTransactionsRequest
    ) -> list[tpb.ListedTransaction]: ...

    def transactional_ids(self) -> list[str]: ...

    def check_producer(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        *,
        partition: TopicPartition | None = None,
    ) -> None:
        """For TxnOffsetCommit's and verification's checks: the id holds this producer and
        epoch and an Ongoing transaction (else the error a write would get); with
        ``partition``, the transaction also includes it (else TransactionAbortableError)."""
        ...
