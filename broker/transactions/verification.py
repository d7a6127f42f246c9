"""KIP-890 part 1 on the partition leader: a producer's transactional write to a partition is
taken only if the partition is in the producer's ongoing transaction, as its transaction
coordinator knows it.

Why: a transactional batch opens a transaction on the partition, and only a marker closes it;
the coordinator writes markers only to the partitions registered with AddPartitionsToTxn. A
write to a partition the producer never registered (a client bug, or a write that arrives
after its transaction ended) would open a transaction no marker closes, and the partition's
last stable offset would stay there for good: a hanging transaction, which read_committed
consumers cannot pass.

So before a producer's first transactional write to a partition in a transaction, the leader
asks the coordinator (AddPartitionsToTxn with verify_only). It does not ask when:

- the producer already has a transaction open on the partition in the batch's epoch (its
  first write there was verified);
- the partition knows a newer epoch for the producer id (the append refuses the batch with
  INVALID_PRODUCER_EPOCH anyway);
- the same partition, producer id and epoch were verified since the last marker for that
  producer id on the partition (a bounded LRU cache; a marker drops the entry, see
  :meth:`TxnWriteVerifier.forget`).

A verification answered just before the transaction ended cannot let a late write reopen it:
every EndTxn bumps the producer epoch and the markers carry the new one (the contract's design
decision 1), so once the marker is on the partition the append refuses the old epoch.

What the producer is told (as Kafka's brokers answer): not in the transaction:
TRANSACTION_ABORTABLE (abort, then go on); fenced: INVALID_PRODUCER_EPOCH; the coordinator
completing the transaction, moving, loading or unreachable: NOT_ENOUGH_REPLICAS (retriable:
nothing was written, and the producer retries without refreshing its metadata); no
transactional id in the request: INVALID_TXN_STATE. Nothing is written in any of these cases.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Protocol

import structlog

from raftka.broker.producers.state import ProducerStateTable
from raftka.broker.transactions.api import TopicPartition
from raftka.common.errors import (
    CoordinatorLoadInProgressError,
    InvalidProducerEpochError,
    NetworkError,
    NotEnoughReplicasError,
    RaftkaError,
    RequestTimedOutError,
)
from raftka.common.group_errors import CoordinatorNotAvailableError, NotCoordinatorError
from raftka.common.records import Buffer
from raftka.common.records.batch import HEADER_SIZE, LOG_OVERHEAD, NO_PRODUCER_ID, BatchHeader
from raftka.common.txn_errors import (
    ConcurrentTransactionsError,
    InvalidProducerIdMappingError,
    InvalidTxnStateError,
    ProducerFencedError,
    TransactionAbortableError,
)

log = structlog.get_logger(__name__)

MAX_CACHED_VERIFICATIONS = 100_000
"""Verified (partition, producer id) pairs remembered (least recently used dropped first)."""

_RETRY_LATER: tuple[type[RaftkaError], ...] = (
    ConcurrentTransactionsError,
    CoordinatorNotAvailableError,
    NotCoordinatorError,
    CoordinatorLoadInProgressError,
    NetworkError,
    RequestTimedOutError,
)
"""Coordinator answers that say "not now": the producer retries the same write."""

_PASSED_ON: tuple[type[RaftkaError], ...] = (InvalidProducerIdMappingError, InvalidTxnStateError)


class PartitionMembership(Protocol):
    """Asks a transactional id's coordinator whether a partition is in the producer's ongoing
    transaction (:class:`~raftka.broker.transactions.verification_transport.
    CoordinatorVerification`)."""

    async def verify(
        self,
        transactional_id: str,
        producer_id: int,
        producer_epoch: int,
        partition: TopicPartition,
    ) -> None:
        """Returns if it is; raises TransactionAbortableError if it is not, and the
        coordinator's error for the transaction as a whole (or a NetworkError) otherwise."""
        ...


def transactional_producers(payload: Buffer) -> list[tuple[int, int]]:
    """The distinct (producer id, epoch) of the transactional data batches in ``payload``, in
    order. Reads batch headers only (no CRC): a payload whose framing is broken is refused
    whole by the append's validator, which frames batches the same way, so every batch that
    can be written is one seen here."""
    found: dict[tuple[int, int], None] = {}
    view = memoryview(payload).cast("B")
    position, end = 0, len(view)
    while end - position >= HEADER_SIZE:
        header = BatchHeader.parse(view, position)
        if header.batch_length <= 0:
            break
        if (
            header.is_transactional
            and not header.is_control
            and header.producer_id != NO_PRODUCER_ID
        ):
            found[(header.producer_id, header.producer_epoch)] = None
        position += header.batch_length + LOG_OVERHEAD
    return list(found)


def producer_error(error: RaftkaError, where: str) -> RaftkaError:
    """The error a producer gets for a write whose verification failed with ``error``."""
    if isinstance(error, ProducerFencedError):
        return InvalidProducerEpochError(
            f"{where}: the transaction coordinator fenced this producer ({error.message}); "
            "nothing was written"
        )
    if isinstance(error, TransactionAbortableError):
        return TransactionAbortableError(
            f"{where} is not in the producer's ongoing transaction ({error.message}); nothing "
            "was written: abort the transaction, and add the partition (AddPartitionsToTxn) "
            "before writing to it"
        )
    if isinstance(error, _PASSED_ON):
        return type(error)(f"{where}: {error.message}; nothing was written")
    reason = "busy" if isinstance(error, _RETRY_LATER) else "did not answer as expected"
    return NotEnoughReplicasError(
        f"{where}: the producer's transaction coordinator {reason} ({error.code_name}: "
        f"{error.message}) while this leader checked the write; nothing was written: retry"
    )


class TxnWriteVerifier:
    """The partition leaders' check of transactional writes (one per broker)."""

    def __init__(
        self,
        coordinator: PartitionMembership,
        *,
        max_entries: int = MAX_CACHED_VERIFICATIONS,
    ) -> None:
        if max_entries <= 0:
            raise ValueError(f"max_entries must be positive, not {max_entries}")
        self._coordinator = coordinator
        self._max_entries = max_entries
        # (topic, partition, producer id) -> the verified epoch, least recently used first
        self._verified: OrderedDict[tuple[str, int, int], int] = OrderedDict()
        self._asking: dict[tuple[str, int, int, int, str], asyncio.Future[None]] = {}

    def __len__(self) -> int:
        return len(self._verified)

    async def check(
        self,
        topic: str,
        partition: int,
        transactional_id: str,
        payload: Buffer,
        producers: ProducerStateTable,
    ) -> None:
        """Returns when the transactional batches of ``payload`` may be appended to
        ``topic``-``partition`` (whose producer state is ``producers``); raises the producer's
        error otherwise (see the module docstring). Non-transactional payloads pass at once."""
        writers = transactional_producers(payload)
        if not writers:
            return
        where = f"{topic}-{partition}"
        if not transactional_id:
            raise InvalidTxnStateError(
                f"{where}: transactional batches (producer id {writers[0][0]}) need the "
                "producer's transactional id: set ProduceRequest.transactional_id; nothing "
                "was written"
            )
        for producer_id, epoch in writers:
            entry = producers.entry(producer_id)
            if entry is not None and (
                entry.epoch > epoch or (entry.epoch == epoch and entry.txn_first_offset is not None)
            ):
                continue  # fenced on the partition, or its transaction is open here already
            key = (topic, partition, producer_id)
            if self._verified.get(key) == epoch:
                self._verified.move_to_end(key)
                continue
            await self._ask(key, transactional_id, epoch)
            self._remember(key, epoch)

    def forget(self, topic: str, partition: int, producer_id: int) -> None:
        """A marker for ``producer_id`` was written on the partition: its transaction there
        ended, so its next transactional write is verified again."""
        self._verified.pop((topic, partition, producer_id), None)

    def _remember(self, key: tuple[str, int, int], epoch: int) -> None:
        self._verified[key] = epoch
        self._verified.move_to_end(key)
        while len(self._verified) > self._max_entries:
            self._verified.popitem(last=False)

    async def _ask(self, key: tuple[str, int, int], transactional_id: str, epoch: int) -> None:
        """One question to the coordinator per partition, producer and epoch at a time:
        concurrent writes of the same producer share its answer."""
        asking_key = (*key, epoch, transactional_id)
        asking = self._asking.get(asking_key)
        if asking is None:
            asking = asyncio.ensure_future(self._verify(key, transactional_id, epoch))
            self._asking[asking_key] = asking
            asking.add_done_callback(lambda done: self._settled(asking_key, done))
        await asyncio.shield(asking)

    def _settled(
        self, asking_key: tuple[str, int, int, int, str], done: asyncio.Future[None]
    ) -> None:
        if self._asking.get(asking_key) is done:
            del self._asking[asking_key]
        if not done.cancelled():
            done.exception()  # retrieved here too: every waiter may have been cancelled

    async def _verify(self, key: tuple[str, int, int], transactional_id: str, epoch: int) -> None:
        topic, partition, producer_id = key
        where = f"{topic}-{partition}"
        try:
            await self._coordinator.verify(transactional_id, producer_id, epoch, (topic, partition))
        except RaftkaError as e:
            refused = producer_error(e, where)
            log.info(
                "txn_write_not_verified",
                topic=topic,
                partition=partition,
                transactional_id=transactional_id,
                producer_id=producer_id,
                producer_epoch=epoch,
                coordinator_error=e.code_name,
                error=refused.code_name,
                message=e.message,
            )
            raise refused from None
        log.debug(
            "txn_write_verified",
            topic=topic,
            partition=partition,
            transactional_id=transactional_id,
            producer_id=producer_id,
            producer_epoch=epoch,
        )
