"""Which principal a producer id belongs to, so one client cannot write with another's.

A producer id is a plain number, and ids are handed out in order, so without this any client
with WRITE on a topic could send a batch with another producer's id and a higher epoch: the
partition would take the new epoch and fence the real producer (its next batch gets
INVALID_PRODUCER_EPOCH, and an acknowledged-looking stream of writes breaks). Kafka has no
rule against it; Raftka refuses such a batch with INVALID_PRODUCER_ID_MAPPING when
authorization is on.

Two bindings, both in memory (a restart or a leader change forgets them; they are re-learnt
from the next writes):

- The broker that hands out an idempotent producer id (InitProducerId) remembers whose it
  is; a write with that id from anyone else is refused on this broker's partitions.
- Each led partition remembers the principal that first wrote with each producer id; a later
  idempotent batch with that id from another principal is refused before the producer-state
  checks, so it can neither fence nor take over the producer. Transactional batches move the
  binding instead: they are authorized by WRITE on their transactional id, and the
  coordinator checks that the producer id is that id's (KIP-890 verification), so a new
  instance of a transactional id run by another principal may take over its producer id.
  The binding moves only once such a batch was written (:meth:`ProducerOwners.written`):
  moved at the check, a transactional batch carrying someone else's producer id, refused
  afterwards by the coordinator, would still have taken the id away from its owner, whose
  next write would then be refused (found by tests/integration/test_security_attacks.py).

Memory stays bounded: a partition's bindings are pruned to the producer ids its producer
state still holds (which expire) whenever they outgrow it, and the issued ids are a bounded
most-recent set.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator

from raftka.common.records.batch import (
    HEADER_SIZE,
    NO_PRODUCER_ID,
    TRANSACTIONAL_FLAG,
    BatchHeader,
    read_batch_size,
)
from raftka.common.txn_errors import InvalidProducerIdMappingError

MAX_ISSUED = 100_000
"""Producer ids handed out by this broker whose owner it remembers (the most recent)."""
PRUNE_SLACK = 1_000
"""A partition's bindings may exceed its live producers by this much before pruning."""


def batch_producers(payload: bytes | memoryview) -> Iterator[tuple[int, bool]]:
    """(producer id, transactional) of each batch with a producer id in ``payload``. Stops at
    anything malformed: the validator refuses such a payload before anything is written."""
    pos, end = 0, len(payload)
    while end - pos >= HEADER_SIZE:
        header = BatchHeader.parse(payload, pos)
        if header.producer_id != NO_PRODUCER_ID:
            yield header.producer_id, bool(header.attributes & TRANSACTIONAL_FLAG)
        size = read_batch_size(payload, pos)
        if size < HEADER_SIZE:
            return
        pos += size


class ProducerOwners:
    """The owners of producer ids, on one broker."""

    def __init__(self, *, max_issued: int = MAX_ISSUED) -> None:
        self._max_issued = max_issued
        self._issued: OrderedDict[int, str] = OrderedDict()
        # Per partition (its log object, so a closed log's bindings go with it).
        self._writers: weakref.WeakKeyDictionary[object, _Writers] = weakref.WeakKeyDictionary()

    def issued(self, producer_id: int, principal: str) -> None:
        """This broker gave ``producer_id`` to ``principal`` (InitProducerId)."""
        self._issued[producer_id] = principal
        while len(self._issued) > self._max_issued:
            self._issued.popitem(last=False)

    def check_write(
        self,
        partition_key: object,
        payload: bytes | memoryview,
        principal: str,
        live: Callable[[int], bool],
        *,
        name: str,
    ) -> None:
        """Refuse (INVALID_PRODUCER_ID_MAPPING) a write by ``principal`` with a producer id
        that belongs to someone else; otherwise record ``principal`` as the owner of the
        idempotent producer ids it writes with (the first writer claims an id at once, so
        two writers cannot both claim it). Transactional batches are not checked here and
        move no binding: :meth:`written` does, once the write went through. ``live(pid)``:
        the partition's producer state still holds ``pid`` (for pruning); ``name``: the
        partition, for the message."""
        producers = list(batch_producers(payload))
        if not producers:
            return
        bound = self._writers.get(partition_key)
        if bound is None:
            bound = self._writers[partition_key] = _Writers()
        writers = bound.owners
        for producer_id, transactional in producers:
            owner = self._issued.get(producer_id) if not transactional else None
            if owner is None and not transactional:
                owner = writers.get(producer_id)
            if owner is not None and owner != principal:
                raise InvalidProducerIdMappingError(
                    f"producer id {producer_id} belongs to another client, not to {principal}: "
                    f"nothing was written to {name}; call InitProducerId for a producer id of "
                    "your own"
                )
        for producer_id, transactional in producers:
            if not transactional:
                writers[producer_id] = principal
        self._prune(bound, live)

    def written(self, partition_key: object, payload: bytes | memoryview, principal: str) -> None:
        """``payload`` was appended for ``principal``: its transactional batches (whose
        producer ids the transaction coordinator confirmed as their transactional id's)
        move their producer ids' bindings to ``principal``. (Pruning is left to the next
        :meth:`check_write`.)"""
        moved = [pid for pid, transactional in batch_producers(payload) if transactional]
        if not moved:
            return
        bound = self._writers.get(partition_key)
        if bound is None:
            bound = self._writers[partition_key] = _Writers()
        for producer_id in moved:
            bound.owners[producer_id] = principal

    @staticmethod
    def _prune(bound: _Writers, live: Callable[[int], bool]) -> None:
        writers = bound.owners
        if len(writers) > bound.limit:
            for pid in [pid for pid in writers if not live(pid)]:
                del writers[pid]
            bound.limit = 2 * len(writers) + PRUNE_SLACK


class _Writers:
    """The first writer of each producer id on one partition; pruned past ``limit`` (twice
    what was live at the last pruning, so pruning costs O(1) per write on average)."""

    __slots__ = ("limit", "owners")

    def __init__(self) -> None:
        self.owners: dict[int, str] = {}
        self.limit = PRUNE_SLACK
