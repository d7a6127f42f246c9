"""Followers pull from partition leaders: one long-polling fetch loop per leader broker.

Each loop asks its leader for every partition this broker follows there, from each log's end
offset and with the epoch of its last batch. The leader answers with batches (appended as they
are), or a DivergingEpoch (the follower truncates to where its log and the leader's agree,
and fetches again), or an error. The follower's high watermark is ``min(leader's high
watermark, own log end)``.

Below the high watermark a follower holds committed records: every leader elected from the ISR
has them, so only an unclean election (the partition's leader recovery state RECOVERING, which
the controller sets when it elects a leader from outside the ISR) can ask a follower to cut
them. Any other request to truncate below the high watermark (a leader that lost its tail and
led anyway, a bug) is refused: the follower logs ``refused_truncation_below_high_watermark``,
keeps its records and stops fetching that partition until its leader epoch changes, so that no
bug can silently delete committed data.

A leader that cannot be reached is reported (``on_unreachable``): a fetch refused (the leader's
process is gone: kill -9 closes its sockets at once) or unanswered within FETCH_WAIT_MS plus
FETCH_ANSWER_MARGIN_MS (a paused or hung leader; a live one answers a long poll when it
expires). The broker passes this to the controller, which probes the leader and fences it if
it does not answer, so that its partitions get a new leader within about a second rather than
a session timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import structlog

from raftka.broker.log.leader_epoch_cache import EpochEndOffset, follower_truncation_target
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import TruncationBelowHighWatermarkError
from raftka.broker.replication.fetch_backoff import FetchBackoff
from raftka.broker.replication.fetch_stream import ReplicaFetchStream
from raftka.common.errors import RaftkaError
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.metadata.model import LeaderRecoveryState
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.fetch_wire import FetchResult
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import broker_pb2 as pb
from raftka.v1.common_pb2 import ErrorCode

log = structlog.get_logger(__name__)

FETCH_WAIT_MS = 300
FETCH_ANSWER_MARGIN_MS = 600
"""How long past its long-poll wait a fetch may go unanswered before the leader is reported
unreachable and the fetch is sent again."""
FETCH_MAX_BYTES = 16 * 1024 * 1024
PARTITION_MAX_BYTES = 1024 * 1024
RETRY_BACKOFF_S = 0.1

IoRunner = Callable[..., Awaitable[Any]]

UNREACHABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
"""Fetch failures that say the leader may be down (any other error is an answer from it)."""


def _no_report(_leader: int) -> None:
    return None


@dataclass
class FollowedPartition:
    topic: str
    partition: int
    log: PartitionLog
    leader_epoch: int
    leader_recovery_state: LeaderRecoveryState = LeaderRecoveryState.RECOVERED
    """RECOVERING after an unclean election: only then may a truncation cut committed data."""


class LeaderFetcher:
    """Fetches every followed partition led by one broker."""

    def __init__(
        self,
        *,
        broker_id: int,
        broker_epoch: Callable[[], int],
        leader_id: int,
        address: str,
        io: IoRunner,
        on_unreachable: Callable[[int], None] = _no_report,
    ) -> None:
        self.leader_id = leader_id
        self.address = address
        self._on_unreachable = on_unreachable
        self._broker_id = broker_id
        self._broker_epoch = broker_epoch
        self._io = io
        self.partitions: dict[tuple[str, int], FollowedPartition] = {}
        self.refused: dict[tuple[str, int], int] = {}
        """Partitions not fetched after a refused truncation, with the leader epoch it was
        refused at: fetching resumes when the partition's leader epoch changes."""
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.backoff = FetchBackoff()
        """Partitions the leader answered with an error wait before they are fetched again."""

    def set_partitions(self, partitions: dict[tuple[str, int], FollowedPartition]) -> None:
        self.partitions = partitions
        self.backoff.retain(partitions.keys())
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"fetch-from-{self.leader_id}")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _run(self) -> None:
        async with open_channel(self.address) as channel:
            # One stream per leader; batches arrive as slices of the answer, not copies.
            stream = ReplicaFetchStream(channel)
            while True:
                try:
                    await self._fetch_from(stream)
                except Exception:
                    # Nothing may end this loop but stop(): a follower that stopped fetching
                    # would hold every acks=all write to this leader until its ISR shrank.
                    log.exception("replica_fetcher_error", leader=self.leader_id)
                    stream.close()
                    await asyncio.sleep(RETRY_BACKOFF_S)

    async def _fetch_from(self, stream: ReplicaFetchStream) -> None:
        """Fetches forever (returns only by raising)."""
        failing = False
        while True:
            request = self._request()
            if not request.topics:
                self._changed.clear()
                retry_in = self.backoff.next_expiry(time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry_in):
                        await self._changed.wait()
                continue
            if not await FAULTS.admit(FaultPath.REPLICATION, self.leader_id, Direction.OUTBOUND):
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            try:
                response = await stream.fetch(
                    request, answer_within_s=(FETCH_WAIT_MS + FETCH_ANSWER_MARGIN_MS) / 1000
                )
                failing = False
            except grpc.aio.AioRpcError as e:
                if e.code() in UNREACHABLE_CODES:
                    self._on_unreachable(self.leader_id)
                if not failing:
                    log.warning("replica_fetch_failed", leader=self.leader_id, code=e.code().name)
                    failing = True
                await asyncio.sleep(RETRY_BACKOFF_S)
                continue
            if FAULTS.drops(FaultPath.REPLICATION, self.leader_id, Direction.OUTBOUND):
                continue  # the answer to a fetch sent before a drop rule is lost too
            for result in response.results:
                key = (result.topic, result.partition)
                followed = self.partitions.get(key)
                if followed is None:
                    continue
                if await self._handle(followed, result):
                    self.backoff.succeeded(key)
                else:
                    self.backoff.failed(key, followed.leader_epoch)

    def _request(self) -> pb.FetchRequest:
        topics: dict[str, list[pb.FetchPartition]] = {}
        now = time.monotonic()
        for key, f in self.partitions.items():
            if self.refused.get(key) == f.leader_epoch:
                continue
            if self.backoff and self.backoff.waiting(key, f.leader_epoch, now):
                continue
            topics.setdefault(f.topic, []).append(
                pb.FetchPartition(
                    partition=f.partition,
                    fetch_offset=f.log.log_end_offset,
                    partition_max_bytes=PARTITION_MAX_BYTES,
                    current_leader_epoch=f.leader_epoch,
                    last_fetched_epoch=f.log.last_fetched_epoch,
                )
            )
        return pb.FetchRequest(
            replica_id=self._broker_id,
            replica_epoch=self._broker_epoch(),
            max_wait_ms=FETCH_WAIT_MS,
            min_bytes=1,
            max_bytes=FETCH_MAX_BYTES,
            topics=[pb.FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()],
        )

    async def _handle(self, f: FollowedPartition, result: FetchResult) -> bool:
        """Apply one partition's answer; False when the fetcher should back off."""
        plog = f.log
        try:
            if (
                result.error_code == ErrorCode.OFFSET_OUT_OF_RANGE
                and result.log_start_offset > plog.log_end_offset
            ):
                # The leader deleted what we would fetch next: restart at its log start.
                await self._io(plog.truncate_fully_and_start_at, result.log_start_offset)
                return True
            if result.error_code != ErrorCode.NONE:
                log.debug(
                    "replica_fetch_partition_error",
                    topic=f.topic,
                    partition=f.partition,
                    error=_code_name(result.error_code),
                    message=result.error_message,
                )
                return False
            if result.diverging_epoch is not None:
                diverging = EpochEndOffset(
                    result.diverging_epoch.epoch, result.diverging_epoch.end_offset
                )
                target = follower_truncation_target(
                    plog.leader_epoch_cache,
                    diverging,
                    log_end_offset=plog.log_end_offset,
                    high_watermark=plog.high_watermark,
                )
                try:
                    await self._io(plog.truncate_to, target.offset)
                except TruncationBelowHighWatermarkError as e:
                    if f.leader_recovery_state is not LeaderRecoveryState.RECOVERING:
                        self._refuse_truncation(f, target.offset, e.high_watermark, diverging)
                        return False
                    # The controller elected this leader from outside the ISR: its log wins,
                    # and the loss of records this replica saw committed is reported.
                    log.warning(
                        "truncating_below_high_watermark",
                        topic=f.topic,
                        partition=f.partition,
                        offset=target.offset,
                        high_watermark=e.high_watermark,
                        reason="the leader was elected uncleanly (leader recovery state "
                        "RECOVERING); records above this offset are lost",
                    )
                    await self._io(plog.truncate_to, target.offset, allow_below_high_watermark=True)
                log.info(
                    "follower_truncated",
                    topic=f.topic,
                    partition=f.partition,
                    offset=target.offset,
                    leader_epoch=diverging.epoch,
                    leader_end_offset=diverging.end_offset,
                )
                return True
            if result.batches:
                # A small append (the usual one at low rates) is written on the event loop:
                # the follower's next fetch, which advances the leader's high watermark,
                # then leaves without waiting for an I/O-thread hop.
                light = plog.append_is_light(len(result.batches))
                if light:
                    plog.append_as_follower(result.batches)
                else:
                    await self._io(plog.append_as_follower, result.batches)
            plog.set_high_watermark(min(result.high_watermark, plog.log_end_offset))
            return True
        except RaftkaError as e:
            log.warning(
                "replica_fetch_apply_failed", topic=f.topic, partition=f.partition, error=e.message
            )
            return False

    def _refuse_truncation(
        self, f: FollowedPartition, offset: int, high_watermark: int, diverging: EpochEndOffset
    ) -> None:
        self.refused[(f.topic, f.partition)] = f.leader_epoch
        log.error(
            "refused_truncation_below_high_watermark",
            topic=f.topic,
            partition=f.partition,
            leader=self.leader_id,
            leader_epoch=f.leader_epoch,
            offset=offset,
            high_watermark=high_watermark,
            log_end_offset=f.log.log_end_offset,
            leader_diverging_epoch=diverging.epoch,
            leader_diverging_end_offset=diverging.end_offset,
            reason="the leader lacks records this replica holds as committed, and the "
            "partition had no unclean election (leader recovery state RECOVERED): "
            "keeping them and no longer fetching this partition until its leader epoch "
            "changes; check the leader's log and metadata",
        )


class ReplicaFetcherManager:
    """Keeps one LeaderFetcher per leader broker in line with what this broker follows."""

    def __init__(
        self,
        *,
        broker_id: int,
        broker_epoch: Callable[[], int],
        io: IoRunner,
        on_unreachable: Callable[[int], None] = _no_report,
    ) -> None:
        self._broker_id = broker_id
        self._broker_epoch = broker_epoch
        self._io = io
        self._on_unreachable = on_unreachable
        self._fetchers: dict[tuple[int, str], LeaderFetcher] = {}

    async def update(
        self, followed: dict[int, tuple[str, dict[tuple[str, int], FollowedPartition]]]
    ) -> None:
        """``followed``: leader id -> (its address, the partitions followed there)."""
        wanted = {(leader, address) for leader, (address, _parts) in followed.items()}
        for key in [k for k in self._fetchers if k not in wanted]:
            await self._fetchers.pop(key).stop()
        for leader, (address, parts) in followed.items():
            fetcher = self._fetchers.get((leader, address))
            if fetcher is None:
                fetcher = LeaderFetcher(
                    broker_id=self._broker_id,
                    broker_epoch=self._broker_epoch,
                    leader_id=leader,
                    address=address,
                    io=self._io,
                    on_unreachable=self._on_unreachable,
                )
                self._fetchers[(leader, address)] = fetcher
                fetcher.start()
            fetcher.set_partitions(parts)

    async def stop(self) -> None:
        for fetcher in self._fetchers.values():
            await fetcher.stop()
        self._fetchers.clear()


def _code_name(code: int) -> str:
    """ErrorCode's name for ``code`` (its number when this version does not know it)."""
    try:
        return ErrorCode.Name(ErrorCode.ValueType(code))
    except ValueError:
        return str(code)
