"""The consumer's background work: fetch requests, reset lookups and metadata refreshes.

A manager task wakes whenever something changes (assignment, seek, poll drained the buffer,
a request finished, a backoff expired) and starts what is due:

* one long-poll fetch loop per leader broker, fetching every partition it leads that has a
  position, room in the buffer (prefetch: the next response is requested while poll() still
  hands out the previous one) and no request in flight. A loop ends when it has nothing left
  to fetch; the manager starts it again when there is.
* ListOffsets for partitions awaiting a reset (seek_to_beginning/end, auto_offset_reset).
* a coalesced metadata refresh when a leader is unknown or moved (NOT_LEADER_OR_FOLLOWER,
  FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, an unreachable broker...), and every
  ``metadata_max_age_ms``.

Each fetch names the leader epoch the metadata gives (current_leader_epoch: a broker whose
epoch differs answers FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH, KIP-320) and the epoch of
the record before its fetch offset (last_fetched_epoch). A leader whose log does not hold that
record in that epoch (an unclean election truncated it) answers a diverging epoch: the
consumer continues from the divergence point, reporting the truncation
(``consumer_log_truncated``, or LogTruncationError from poll() with auto_offset_reset="none"),
rather than applying the reset policy.

A partition whose request failed backs off (``retry_backoff_ms`` doubling to 1 s) before it is
tried again, at whatever leader the metadata then names. A response is used only if the
partition's state did not change while it was in flight (no seek, reset or unassign) and it
starts where the buffered data ends, so positions never jump or repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import grpc
import structlog

from raftka.client.connections import BrokerConnections
from raftka.client.consumer.backoff import PartitionBackoff
from raftka.client.consumer.config import ConsumerConfig
from raftka.client.consumer.errors import (
    CorruptDataError,
    LogTruncationError,
    OffsetOutOfRangeError,
)
from raftka.client.consumer.fetch_buffer import FetchBuffer
from raftka.client.consumer.offsets import OffsetLookup
from raftka.client.consumer.records import CompletedFetch, batch_spans
from raftka.client.consumer.refresher import MetadataRefresher
from raftka.client.consumer.subscription import ResetStrategy, SubscriptionState
from raftka.client.errors import PartitionError
from raftka.client.metadata_cache import MetadataCache
from raftka.client.throttle import ThrottleStats
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.records.errors import RecordError
from raftka.common.rpc.fetch_wire import EpochEnd, FetchAnswer, FetchResult
from raftka.common.rpc.retry import RetryPolicy
from raftka.common.rpc.status import error_from_rpc
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

# Read once: protobuf's enum wrapper resolves ``ErrorCode.NONE`` through a Python
# ``__getattr__`` (0.7 us measured), and every fetched partition compares against these.
_NONE = ErrorCode.NONE
_OFFSET_OUT_OF_RANGE = ErrorCode.OFFSET_OUT_OF_RANGE
_CORRUPT_MESSAGE = ErrorCode.CORRUPT_MESSAGE

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
FetchListener = Callable[[float, int], None]


class Fetcher:
    def __init__(
        self,
        config: ConsumerConfig,
        subscription: SubscriptionState,
        buffer: FetchBuffer,
        metadata: MetadataCache,
        connections: BrokerConnections,
        lookup: OffsetLookup,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self._config = config
        self._subscription = subscription
        self._buffer = buffer
        self._metadata = metadata
        self._connections = connections
        self._lookup = lookup
        self._clock = clock
        initial = config.retry_backoff_ms / 1000
        self._retry = RetryPolicy(initial, max(1.0, initial))
        self._fetch_timeout_s = (config.fetch_max_wait_ms + config.request_timeout_ms) / 1000
        self._isolation = 1 if config.isolation_level == "read_committed" else 0
        self.data_ready = asyncio.Event()
        """Set when the buffer gains records or a partition fails: poll() waits on it."""
        self._wakeup = asyncio.Event()
        self.fetch_listeners: list[FetchListener] = []
        self.throttle = ThrottleStats()
        """The brokers' quota throttle times seen in Fetch answers."""
        """Called after every answered fetch with (seconds it took, bytes of batches)."""
        self._manager: asyncio.Task[None] | None = None
        self._closed = False
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._resets: set[asyncio.Task[None]] = set()
        self._inflight: set[TopicPartition] = set()
        self._resetting: set[TopicPartition] = set()
        self._backoff = PartitionBackoff(self._retry, clock)
        self.refresher = MetadataRefresher(
            metadata,
            lambda: {tp.topic for tp in subscription.partitions()},
            retry=self._retry,
            max_age_s=config.metadata_max_age_ms / 1000,
            request_timeout_s=config.request_timeout_ms / 1000,
            on_done=self._refreshed,
            clock=clock,
        )

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        return self._manager is not None and not self._manager.done()

    def start(self) -> None:
        if self._manager is None:
            self._manager = asyncio.ensure_future(self._run())

    def wakeup(self) -> None:
        self._wakeup.set()

    async def close(self) -> None:
        self._closed = True
        await self.refresher.close()
        await cancel_and_wait([self._manager, *self._loops.values(), *self._resets])
        self._loops.clear()
        self._resets.clear()

    def in_flight(self) -> set[TopicPartition]:
        return set(self._inflight)

    @property
    def idle(self) -> bool:
        """Nothing in flight, nothing due: no request, lookup or refresh running, no wakeup
        unhandled, no backoff pending (for tests and diagnostics)."""
        now = self._clock()
        return (
            not self._wakeup.is_set()
            and not self._loops
            and not self._resets
            and not self._resetting
            and not self.refresher.running
            and not self.refresher.wanted
            and self._backoff.next_expiry(now) is None
        )

    # ------------------------------------------------------------------ the manager

    async def _run(self) -> None:
        while not self._closed:
            self._wakeup.clear()
            try:
                self._dispatch()
            except Exception:  # a bug must not stop consumption silently forever
                log.exception("consumer_dispatch_failed")
            timeout = self._next_timer()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wakeup.wait()

    def _dispatch(self) -> None:
        now = self._clock()
        assigned = self._subscription.partitions()
        self._backoff.retain(self._subscription.is_assigned)
        if not assigned or self._closed:
            return
        refresh = self.refresher.due(now)
        due = {
            tp: strategy
            for tp, strategy in self._subscription.awaiting_reset().items()
            if tp not in self._resetting and not self._backoff.waiting(tp, now)
        }
        if due:
            known = {tp: s for tp, s in due.items() if self._leader(tp) is not None}
            refresh = refresh or len(known) < len(due)
            if known:
                task = asyncio.ensure_future(self._reset(known))
                self._resets.add(task)
                task.add_done_callback(self._resets.discard)
        for tp in self._fetchable(now):
            address = self._leader(tp)
            if address is None:
                refresh = True
            elif address not in self._loops:
                self._loops[address] = asyncio.ensure_future(self._leader_loop(address))
        if refresh:
            self.refresher.request()

    def _next_timer(self) -> float | None:
        now = self._clock()
        expiry = self._backoff.next_expiry(now)
        times = [] if expiry is None else [expiry]
        refresh_at = self.refresher.next_time()
        if refresh_at is not None and self._subscription.partitions():
            times.append(refresh_at)
        if not times:
            return None
        return max(0.001, min(times) - now)

    def _fetchable(self, now: float) -> list[TopicPartition]:
        return [
            tp
            for tp in self._subscription.fetchable()
            if tp not in self._inflight
            and not self._backoff.waiting(tp, now)
            and self._buffer.has_room(tp)
        ]

    def _leader(self, tp: TopicPartition) -> str | None:
        return self._metadata.leader_address(tp.topic, tp.partition)

    def _refreshed(self, ok: bool) -> None:
        if not ok:
            self.data_ready.set()  # poll() reports it once no broker answered for too long
        self._wakeup.set()

    # ------------------------------------------------------------------ resets

    async def _reset(self, due: dict[TopicPartition, ResetStrategy]) -> None:
        # A partition may have left the assignment (a rebalance) since it was found due.
        due = {tp: s for tp, s in due.items() if self._subscription.is_assigned(tp)}
        if not due:
            return
        versions = {tp: self._subscription.state(tp).version for tp in due}
        self._resetting |= set(due)
        try:
            outcome = await self._lookup.attempt({tp: int(s) for tp, s in due.items()})
        except RaftkaError as e:  # not retriable (retriable errors are in the outcome)
            for tp in due:
                if not self._current(tp, versions[tp]):
                    continue
                if isinstance(e, PartitionError) and (e.topic, e.partition) != tp:
                    self._backoff.failed(tp)
                else:
                    self._fail(tp, e)
            return
        finally:
            self._resetting -= set(due)
            self._wakeup.set()
        for tp, found in outcome.found.items():
            if not self._current(tp, versions[tp]):
                continue
            if found is None:
                self._backoff.failed(tp)
                continue
            self._backoff.succeeded(tp)
            self._subscription.seek(tp, found.offset)
            self._buffer.clear(tp)
            log.info(
                "consumer_offset_reset", partition=str(tp), to=due[tp].name, offset=found.offset
            )
        for tp in outcome.retriable:
            self._backoff.failed(tp)
        if outcome.refresh_metadata:
            self.refresher.request()

    def _current(self, tp: TopicPartition, version: int) -> bool:
        return (
            self._subscription.is_assigned(tp) and self._subscription.state(tp).version == version
        )

    # ------------------------------------------------------------------ fetching

    async def _leader_loop(self, address: str) -> None:
        me = asyncio.current_task()
        try:
            while not self._closed:
                tps = [tp for tp in self._fetchable(self._clock()) if self._leader(tp) == address]
                if not tps:
                    return
                self._inflight |= set(tps)
                try:
                    ok = await self._fetch_once(address, tps)
                except Exception:  # a bug: log it, and retry later rather than stop for good
                    log.exception("consumer_fetch_crashed", broker=address)
                    ok = False
                finally:
                    self._inflight -= set(tps)
                if not ok:
                    for tp in tps:
                        self._backoff.failed(tp)
                    self.refresher.request()
                    return
        finally:
            if self._loops.get(address) is me:
                del self._loops[address]
            self._wakeup.set()

    async def _fetch_once(self, address: str, tps: list[TopicPartition]) -> bool:
        """One fetch from ``address``; False if the broker could not be reached."""
        request, started = self._request(tps)
        sent_at = self._clock()
        try:
            response = await self._connections.fetch(address)(
                request, timeout=self._fetch_timeout_s
            )
        except grpc.aio.AioRpcError as e:
            error = error_from_rpc(e, address)
            log.info("consumer_fetch_failed", broker=address, error=error.message)
            return False
        self.throttle.note(response.throttle_time_ms, address, "Fetch")
        if self.fetch_listeners:
            latency = self._clock() - sent_at
            nbytes = sum(len(r.batches) for r in response.results)
            for listener in self.fetch_listeners:
                listener(latency, nbytes)
        self._handle(response, started)
        return True

    def _request(
        self, tps: list[TopicPartition]
    ) -> tuple[pb.FetchRequest, dict[TopicPartition, tuple[int, int]]]:
        """The request, and each partition's (fetch offset, state version) it was built from."""
        c = self._config
        request = pb.FetchRequest(
            max_wait_ms=c.fetch_max_wait_ms,
            min_bytes=c.fetch_min_bytes,
            max_bytes=c.fetch_max_bytes,
            isolation_level=self._isolation,
        )
        started: dict[TopicPartition, tuple[int, int]] = {}
        for topic in sorted({tp.topic for tp in tps}):
            entry = request.topics.add(topic=topic)
            for tp in tps:
                if tp.topic != topic:
                    continue
                state = self._subscription.state(tp)
                assert state.position is not None  # fetchable
                offset = self._buffer.next_fetch_offset(tp, state.position)
                info = self._metadata.partition(tp.topic, tp.partition)
                wanted = entry.partitions.add(
                    partition=tp.partition,
                    fetch_offset=offset,
                    partition_max_bytes=c.max_partition_fetch_bytes,
                )
                if info is not None and info.leader_epoch >= 0:
                    wanted.current_leader_epoch = info.leader_epoch
                last_epoch = self._buffer.next_fetch_epoch(tp, state.leader_epoch)
                if last_epoch is not None:
                    wanted.last_fetched_epoch = last_epoch
                started[tp] = (offset, state.version)
        return request, started

    def _handle(
        self, response: FetchAnswer, started: dict[TopicPartition, tuple[int, int]]
    ) -> None:
        for r in response.results:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in started:
                continue
            offset, version = started[tp]
            if not self._current(tp, version):
                continue  # sought, reset or unassigned while in flight
            state = self._subscription.state(tp)
            if (
                state.position is None
                or self._buffer.next_fetch_offset(tp, state.position) != offset
            ):
                continue
            code = r.error_code
            if code == _NONE and r.diverging_epoch is not None:
                self._diverged(tp, state.position, r.diverging_epoch)
            elif code == _NONE:
                self._backoff.succeeded(tp)
                self.refresher.progress()
                state.high_watermark, state.log_start_offset = r.high_watermark, r.log_start_offset
                aborted = (
                    [(a.producer_id, a.first_offset) for a in r.aborted_transactions]
                    if self._isolation
                    else []
                )
                self._add(tp, offset, r.batches, aborted)
            elif code == _OFFSET_OUT_OF_RANGE:
                self._out_of_range(tp, offset, state.position, r)
            elif code == _CORRUPT_MESSAGE:
                # The broker's copy is damaged (as Kafka's consumer does, tell the application
                # where); its leadership moves to a healthy replica, so a seek() retries there.
                self.refresher.request()
                if offset != state.position:  # a prefetch: records before it are still due
                    self._backoff.failed(tp)
                else:
                    detail = r.error_message or "CORRUPT_MESSAGE"
                    self._fail(tp, CorruptDataError(tp, offset, detail))
            else:
                error = PartitionError(r.error_code, r.error_message, r.topic, r.partition)
                if error.retriable:
                    log.info("consumer_fetch_retry", partition=str(tp), error=error.message)
                    self._backoff.failed(tp)
                    if error.refresh_metadata:
                        self.refresher.request()
                else:
                    self._fail(tp, error)

    def _add(
        self, tp: TopicPartition, offset: int, data: bytes, aborted: list[tuple[int, int]]
    ) -> None:
        if not data:
            return
        try:
            spans = batch_spans(data, verify=self._config.check_crcs)
        except RecordError as e:
            self._fail(tp, CorruptDataError(tp, offset, f"a fetched batch is corrupt: {e.message}"))
            return
        if spans:
            self._buffer.add(CompletedFetch(tp, data, offset, spans, aborted))
            self.data_ready.set()

    def _out_of_range(self, tp: TopicPartition, offset: int, position: int, r: FetchResult) -> None:
        if offset != position:  # a prefetch past buffered data: decided once that is consumed
            self._backoff.failed(tp)
            return
        where = f"valid positions are {r.log_start_offset} to {r.high_watermark}"
        if self._subscription.reset_policy == "none":
            self._fail(tp, OffsetOutOfRangeError({tp: offset}, where))
            return
        log.info("consumer_offset_out_of_range", partition=str(tp), offset=offset, detail=where)
        self._subscription.apply_reset_policy(tp)
        self._buffer.clear(tp)

    def _diverged(self, tp: TopicPartition, position: int, diverging: EpochEnd) -> None:
        """The leader's log diverges from what this consumer fetched: it holds ``tp`` in
        epoch ``diverging.epoch`` only up to ``diverging.end_offset``. Buffered records past
        that point are dropped; a position past it means records already returned are gone
        (LogTruncationError with auto_offset_reset="none", else continue from there)."""
        self._buffer.clear(tp)
        end = diverging.end_offset
        if diverging.epoch < 0 or end < 0:  # the leader knows no epoch that old: no anchor
            log.warning("consumer_log_truncated", partition=str(tp), position=position, to=None)
            self._subscription.apply_reset_policy(tp)
            return
        if end >= position:  # only prefetched, not yet returned, records were truncated
            self._subscription.seek(tp, position, self._subscription.state(tp).leader_epoch)
            return
        if self._subscription.reset_policy == "none":
            self._fail(tp, LogTruncationError({tp: (position, end)}))
            return
        log.warning(
            "consumer_log_truncated",
            partition=str(tp),
            position=position,
            to=end,
            epoch=diverging.epoch,
        )
        self._subscription.seek(tp, end, diverging.epoch)

    def _fail(self, tp: TopicPartition, error: RaftkaError) -> None:
        self._subscription.fail(tp, error)
        self._buffer.clear(tp)
        self.data_ready.set()
