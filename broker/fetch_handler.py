"""The BrokerService's Fetch: consumers' and followers' reads, long-polling for data.

Stored batches are returned as the log read them: the answer is a
:class:`~raftka.common.rpc.fetch_wire.FetchAnswer` whose results hold those buffers, and
fetch_wire.py writes it in one join (no generated message in between: docs/architecture.md,
"Copies on the produce and fetch paths"). The decoded-records form (``decode_records``) is the
exception: it is answered with the generated class.

Transactions: a read_committed fetch stops at the last stable offset and names the aborted
transactions in what it returns; its decoded-records form drops their records itself (and
control records at either isolation level: a marker is not application data).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from raftka.broker.fetch_poll import PollRound, leader_partition, long_poll
from raftka.broker.isolation import READ_COMMITTED, require_isolation_level
from raftka.broker.log.leader_epoch_cache import EpochEndOffset
from raftka.broker.metrics import TopicTraffic
from raftka.broker.partition import Partition
from raftka.broker.quotas.manager import NO_SENSORS, CallerSensors, QuotaManager
from raftka.broker.quotas.throttling import under_quota
from raftka.broker.replica_manager import ReplicaManager
from raftka.broker.request_checks import (
    NOTHING_REFUSED,
    optional_epoch,
    require_distinct,
    set_error,
)
from raftka.common.errors import NetworkError, RaftkaError
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.limits import require_items
from raftka.common.records.visibility import visible_records
from raftka.common.rpc.fetch_wire import AbortedTransaction, EpochEnd, FetchAnswer, FetchResult
from raftka.common.security.guard import AccessGuard
from raftka.common.storage.errors import LogOffsetOutOfRangeError
from raftka.common.storage.txn_index import AbortedTxn
from raftka.v1 import broker_pb2 as pb

DEFAULT_FETCH_MAX_BYTES = 50 * 1024 * 1024
MAX_FETCH_RESPONSE_BYTES = 55 * 1024 * 1024
"""The most batch bytes one Fetch answer holds, whatever its max_bytes says (Kafka's broker
``fetch.max.bytes``; below the 64 MiB gRPC message limit), plus at most one batch."""
DEFAULT_PARTITION_MAX_BYTES = 1024 * 1024

Wanted = list[tuple[str, pb.FetchPartition]]


def fetch_response_budget(max_bytes: int) -> int:
    """The batch bytes a Fetch answer may hold: the request's ``max_bytes``, 50 MiB when
    unset (0 or negative), never more than MAX_FETCH_RESPONSE_BYTES."""
    return min(max_bytes, MAX_FETCH_RESPONSE_BYTES) if max_bytes > 0 else DEFAULT_FETCH_MAX_BYTES


class FetchHandler:
    def __init__(
        self,
        *,
        replicas: ReplicaManager,
        guard: AccessGuard,
        quotas: QuotaManager,
        traffic: TopicTraffic,
    ) -> None:
        self._replicas = replicas
        self._guard = guard
        self._quotas = quotas
        self._traffic = traffic

    def leader_partition(self, topic: str, partition: int, epoch: int | None) -> Partition:
        """The partition if this broker leads it, its leader epoch checked first
        (:func:`~raftka.broker.fetch_poll.leader_partition`)."""
        return leader_partition(self._replicas, topic, partition, epoch)

    def wanted(self, request: pb.FetchRequest) -> Wanted:
        """The partitions ``request`` names, checked (bounded, each once, a known isolation
        level)."""
        wanted = [(t.topic, p) for t in request.topics for p in t.partitions]
        require_items(len(wanted), "topics[].partitions", empty_means_all=True)
        require_distinct(((t, p.partition) for t, p in wanted), "the Fetch request")
        require_isolation_level(request.isolation_level)
        return wanted

    async def for_follower(
        self, request: pb.FetchRequest, wanted: Wanted
    ) -> FetchAnswer | pb.FetchResponse:
        """A follower's fetch (``replica_id`` >= 0): only nodes replicate, and followers are
        never held back by client quotas."""
        replica = request.replica_id
        self._guard.require_cluster_action()
        if not await FAULTS.admit(FaultPath.REPLICATION, replica, Direction.INBOUND):
            raise NetworkError(f"fetch from replica {replica} dropped by fault injection")
        self._replicas.follower_fetched(replica)
        answer, _, _ = await self._fetch(
            request, wanted, fetch_response_budget(request.max_bytes), NOTHING_REFUSED
        )
        if FAULTS.drops(FaultPath.REPLICATION, replica, Direction.INBOUND):
            raise NetworkError(f"answer to replica {replica} dropped by fault injection")
        return answer

    async def for_consumer(
        self,
        request: pb.FetchRequest,
        wanted: Wanted,
        refused: Mapping[str, RaftkaError],
        sensors: CallerSensors,
    ) -> FetchAnswer | pb.FetchResponse:
        """A consumer's fetch, throttled by its quota ``sensors``; topics in ``refused``
        answer their error."""
        max_bytes = fetch_response_budget(request.max_bytes)
        if sensors is NO_SENSORS:
            answer, _, _ = await self._fetch(request, wanted, max_bytes, refused)
            return answer
        if sensors.fetch is not None:
            # At most one window's worth per answer (Kafka caps fetch.max.bytes so).
            max_bytes = min(max_bytes, self._quotas.max_bytes_in_window(sensors.fetch))

        async def work() -> tuple[FetchAnswer | pb.FetchResponse, int, float]:
            return await self._fetch(request, wanted, max_bytes, refused)

        # The answer keeps its records and is held back (Kafka's delayed response, as for
        # fetch versions before KIP-219); the consumer needs to do nothing.
        answer, throttle = await under_quota(self._quotas, sensors, sensors.fetch, work)
        if throttle > 0:
            answer.throttle_time_ms = throttle
        return answer

    async def _fetch(
        self,
        request: pb.FetchRequest,
        wanted: Wanted,
        max_bytes: int,
        refused: Mapping[str, RaftkaError],
    ) -> tuple[FetchAnswer | pb.FetchResponse, int, float]:
        """Read (long-polling up to max_wait_ms); return the answer, its batch bytes and the
        seconds spent waiting for data. Topics in ``refused`` answer their error."""
        follower = request.HasField("replica_id") and request.replica_id >= 0

        async def read_round() -> PollRound[FetchAnswer]:
            got = PollRound(FetchAnswer())
            for topic, p in wanted:
                result = FetchResult(topic, p.partition, 0, "", -1, -1, -1)
                got.answer.results.append(result)
                if topic in refused:
                    set_error(result, refused[topic])
                    got.settled = True
                    continue
                nbytes, wake = await self._fetch_one(
                    result, p, max(0, max_bytes - got.nbytes), got.nbytes == 0, request, follower
                )
                got.nbytes += nbytes
                if wake is not None:
                    got.wakes.append(wake)
                # An error or a divergence is answered at once: waiting would not change it.
                if result.error_code != 0 or result.diverging_epoch is not None:
                    got.settled = True
            return got

        polled = await long_poll(
            read_round, min_bytes=request.min_bytes, max_wait_ms=request.max_wait_ms
        )
        answer = polled.answer
        if request.decode_records:
            return decoded(answer, request.isolation_level), polled.nbytes, polled.waited_s
        return answer, polled.nbytes, polled.waited_s

    async def _fetch_one(
        self,
        result: FetchResult,
        p: pb.FetchPartition,
        budget: int,
        first: bool,
        request: pb.FetchRequest,
        follower: bool,
    ) -> tuple[int, asyncio.Event | None]:
        """Read one partition into ``result``; return the bytes read and the event that fires
        on its next append (taken before the read, so an append racing with the read still
        wakes the long poll)."""
        topic = result.topic
        partition: Partition | None = None
        current_leader_epoch = optional_epoch(p, "current_leader_epoch")
        last_fetched_epoch = optional_epoch(p, "last_fetched_epoch")
        try:
            partition = self.leader_partition(topic, p.partition, current_leader_epoch)
            wait_on = partition.data_arrived  # taken before reading, so no append is missed
            limit = (
                p.partition_max_bytes if p.partition_max_bytes > 0 else DEFAULT_PARTITION_MAX_BYTES
            )
            # Only the first partition with data may exceed the budget (by one whole batch).
            max_bytes = min(limit, budget)
            if follower:
                outcome = await partition.read_for_follower(
                    request.replica_id,
                    request.replica_epoch,
                    current_leader_epoch,
                    p.fetch_offset,
                    last_fetched_epoch,
                    max_bytes,
                    min_one_batch=first,
                )
            else:
                outcome = await partition.read_for_consumer(
                    p.fetch_offset,
                    max_bytes,
                    current_leader_epoch=current_leader_epoch,
                    last_fetched_epoch=last_fetched_epoch,
                    min_one_batch=first,
                    isolation_level=request.isolation_level,
                )
            if isinstance(outcome, EpochEndOffset):
                result.diverging_epoch = EpochEnd(outcome.epoch, outcome.end_offset)
                result.high_watermark = partition.high_watermark
                result.log_start_offset = partition.log.log_start_offset
                return 0, None
            data = outcome
            if not follower:
                self._traffic.bytes_out(topic, len(data.records))
            result.batches = data.records
            result.high_watermark = data.high_watermark
            result.last_stable_offset = data.last_stable_offset
            result.aborted_transactions = aborted_in_order(data.aborted)
            result.log_start_offset = data.log_start_offset
            return len(data.records), wait_on
        except LogOffsetOutOfRangeError as e:
            result.error_code = e.code
            result.error_message = (
                f"{e.message}: seek to an offset in [log start, high watermark] and fetch again"
            )
            result.log_start_offset = e.log_start_offset
            if partition is not None:
                result.high_watermark = partition.high_watermark
            return 0, None
        except RaftkaError as e:
            set_error(result, e)
            return 0, None


def aborted_in_order(aborted: Iterable[AbortedTxn]) -> list[AbortedTransaction]:
    """The aborted transactions of a read, in first-offset order (the transaction index holds
    them in the order of their markers, which is not always the order they began in)."""
    ordered = sorted(aborted, key=lambda t: (t.first_offset, t.producer_id))
    return [AbortedTransaction(t.producer_id, t.first_offset) for t in ordered]


def decoded(answer: FetchAnswer, isolation_level: int) -> pb.FetchResponse:
    """The decoded-records form of an answer (``decode_records``), as the generated class."""
    response = pb.FetchResponse(throttle_time_ms=answer.throttle_time_ms)
    for r in answer.results:
        out = response.results.add(
            topic=r.topic,
            partition=r.partition,
            error_code=r.error_code,
            error_message=r.error_message,
            high_watermark=r.high_watermark,
            last_stable_offset=r.last_stable_offset,
            log_start_offset=r.log_start_offset,
        )
        if r.diverging_epoch is not None:
            out.diverging_epoch.epoch = r.diverging_epoch.epoch
            out.diverging_epoch.end_offset = r.diverging_epoch.end_offset
        if r.current_leader is not None:
            out.current_leader.leader_id = r.current_leader.leader_id
            out.current_leader.leader_epoch = r.current_leader.leader_epoch
        decode_records(out, r, isolation_level)
    return response


def decode_records(out: pb.FetchPartitionResult, result: FetchResult, isolation_level: int) -> None:
    """The plain records of ``result``'s batches into ``out``: without control records and, for
    read_committed, without the records of the aborted transactions the result names (which
    are not passed on: the caller has nothing left to filter)."""
    aborted = (
        [(a.producer_id, a.first_offset) for a in result.aborted_transactions]
        if isolation_level == READ_COMMITTED
        else []
    )
    for rec in visible_records(result.batches, aborted):
        out.records.append(
            pb.Record(
                key=rec.key,
                value=rec.value,
                offset=rec.offset,
                timestamp_ms=rec.timestamp,
                headers=[pb.RecordHeader(key=k, value=v) for k, v in rec.headers],
            )
        )
