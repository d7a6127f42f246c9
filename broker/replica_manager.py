"""The partitions this broker hosts, kept in line with the metadata image, and their ISR.

After every metadata change the broker reconciles: a partition that lists this broker as a
replica gets a log (created if new) and a :class:`~raftka.broker.partition.Partition`; one
that no longer does, or whose topic was deleted, is closed and its log removed. A partition
this broker leads gets a LeaderReplicaState (follower progress, ISR, high watermark) and
stamps its leader epoch into the log; one it follows is fetched from its leader by a
ReplicaFetcherManager. ISR changes the leader decides (expansions on a follower's fetch,
shrinks by the periodic check here) go to the controller as AlterPartition. What a produce or
fetch does with one partition is the Partition's.

No roles before this incarnation is confirmed (KIP-966). A broker restarted after a crash
replays the metadata log from the start, and until the controller has taken in its new
incarnation that log still names it leader and ISR member of what its previous incarnation led,
while the restart may have cost it its unflushed tail. So reconciliation does nothing (no log
opened, none deleted, no leadership, no fetching) until the broker has registered and its image
holds its own registration: the registration record, and the ISR removals and leader moves the
controller commits in the same batch, are then part of what it reconciles from.

Unreachable peers are reported (``report_unreachable``, to the controller through the
broker's heartbeats): a leader this broker's fetches cannot reach (the fetcher), and a follower
that has sent no fetch for FOLLOWER_SILENCE_MS while it holds back the high watermark of a
partition led here (a live follower long-polls without pause, so its fetches are never that far
apart). The controller confirms with its own probe before it fences anyone, so a follower that
is only slow or cut off from this broker stays in the ISR by this path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from raftka.broker.io_threads import IoThreads
from raftka.broker.log.manager import LogManager, NewPartitionLog
from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.scrubber import FoundDamage
from raftka.broker.log.types import StaleLeaderEpochError
from raftka.broker.metadata_changes import MetadataChanges
from raftka.broker.metadata_follower import MetadataFollower
from raftka.broker.partition import NotLeaderOrFollowerError, Partition
from raftka.broker.replication.alter_partition import AlterPartitionSender
from raftka.broker.replication.fetcher import FollowedPartition, ReplicaFetcherManager
from raftka.broker.replication.leader_state import IsrProposal, LeaderReplicaState, ReplicaProgress
from raftka.broker.replication.silence import FollowerSilence
from raftka.common.clock import monotonic_ms
from raftka.common.errors import (
    RaftkaError,
    UnknownTopicOrPartitionError,
)
from raftka.common.metadata.model import PartitionState
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

HW_CHECKPOINT_INTERVAL_MS = 5000
RECONCILE_CONCURRENCY = 64
"""Partitions reconciled at once (their disk work overlaps on the I/O threads)."""
RECONCILE_RETRY_S = 1.0
"""How soon a reconcile that failed is tried again."""

SILENCE_CHECK_INTERVAL_S = 0.1


def _no_report(_broker_id: int, _broker_epoch: int) -> None:
    return None


class ReplicaManager:
    def __init__(
        self,
        broker_id: int,
        logs: LogManager,
        follower: MetadataFollower,
        *,
        io: IoThreads,
        controller: ControllerClient,
        broker_epoch: Callable[[], int],
        lag_time_max_ms: int,
        report_unreachable: Callable[[int, int], None] = _no_report,
    ) -> None:
        """``report_unreachable(broker id, broker epoch)``: tell the controller a peer could
        not be reached (the lifecycle's heartbeats carry it)."""
        self.broker_id = broker_id
        self._logs = logs
        self._follower = follower
        self._io = io
        self._broker_epoch = broker_epoch
        self._lag_time_max_ms = lag_time_max_ms
        self._hosted: dict[tuple[str, int], Partition] = {}
        self._followed: dict[tuple[str, int], tuple[int, str, FollowedPartition]] = {}
        """What this broker fetches: (leader id, its address, the partition) by partition."""
        self._reconcile_lock = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._report_unreachable = report_unreachable
        self._fetchers = ReplicaFetcherManager(
            broker_id=broker_id,
            broker_epoch=broker_epoch,
            io=io.run,
            on_unreachable=self._leader_unreachable,
        )
        self._silence = FollowerSilence()
        self._alter = AlterPartitionSender(
            broker_id,
            controller=controller,
            broker_epoch=broker_epoch,
            broker_epoch_of=self.broker_epoch_of,
            is_active=self.is_active,
        )
        self._background: set[asyncio.Task[None]] = set()
        self._waiting_logged = False
        self._repairing: set[tuple[str, int]] = set()
        follower.add_listener(self._dirty.set)

    # ---- lookups ----

    def lookup(self, topic: str, partition: int) -> tuple[PartitionState, Partition | None]:
        """The partition's metadata and its local replica (None if not hosted here yet)."""
        image = self._follower.image
        t = image.topic(topic)
        if t is None or partition not in t.partitions:
            raise UnknownTopicOrPartitionError(
                f"{topic}-{partition} does not exist (as of metadata index {self._follower.index})"
            )
        return t.partitions[partition], self._hosted.get((topic, partition))

    def leader_partition(self, topic: str, partition: int) -> Partition:
        """The hosted partition if this broker leads it, else the error a client should see."""
        state, hosted = self.lookup(topic, partition)
        if state.leader != self.broker_id or hosted is None or hosted.leader_state is None:
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} does not lead {topic}-{partition}; broker {state.leader} does",
                leader_id=state.leader,
                leader_epoch=state.leader_epoch,
            )
        return hosted

    def hosted(self) -> list[Partition]:
        return list(self._hosted.values())

    def broker_epoch_of(self, broker_id: int) -> int:
        reg = self._follower.image.broker(broker_id)
        return -1 if reg is None else int(reg.epoch)

    # ---- the leader's side of replication ----

    def is_active(self, broker_id: int) -> bool:
        return self._follower.image.is_active(broker_id)

    def propose_isr(self, partition: Partition, proposal: IsrProposal) -> None:
        """Sends a leader's ISR change to the controller (AlterPartition), in the background."""
        self._spawn(self._alter.alter_isr(partition, proposal))

    # ---- unreachable peers ----

    def follower_fetched(self, replica: int, now_ms: int | None = None) -> None:
        """A fetch from follower broker ``replica`` arrived (once per Fetch request)."""
        self._silence.fetched(replica, monotonic_ms() if now_ms is None else now_ms)

    def _leader_unreachable(self, leader: int) -> None:
        self._report_unreachable(leader, self.broker_epoch_of(leader))

    def check_silent_followers(self, now_ms: int) -> list[int]:
        """Report (and return) the follower brokers silent for FOLLOWER_SILENCE_MS that hold
        back the high watermark of a partition led here (see
        :class:`~raftka.broker.replication.silence.FollowerSilence`)."""
        led = (h.leader_state for h in self._hosted.values() if h.leader_state is not None)
        holding = self._silence.holding_back(now_ms, led, self.is_active)
        for b in holding:
            self._report_unreachable(b, self.broker_epoch_of(b))
        return holding

    async def run_isr_checks(self) -> None:
        """Shrink the ISR of led partitions whose followers fell behind, report followers
        gone silent, and checkpoint high watermarks, forever."""
        interval_ms = max(50, min(1000, self._lag_time_max_ms // 2))
        last_checkpoint = last_isr_check = monotonic_ms()
        while True:
            await asyncio.sleep(SILENCE_CHECK_INTERVAL_S)
            now = monotonic_ms()
            self.check_silent_followers(now)
            if now - last_isr_check < interval_ms:
                continue
            last_isr_check = now
            if monotonic_ms() - last_checkpoint >= HW_CHECKPOINT_INTERVAL_MS:
                last_checkpoint = monotonic_ms()
                await self._checkpoint_high_watermarks()
            for hosted in list(self._hosted.values()):
                state = hosted.leader_state
                if state is not None and not hosted.alter_in_flight:
                    proposal = state.propose_shrink(monotonic_ms())
                    if proposal is not None:
                        self.propose_isr(hosted, proposal)

    async def _checkpoint_high_watermarks(self) -> None:
        """Persist every partition's high watermark (Kafka: every 5 s), so a replica restarted
        after kill -9 knows which of its records were committed."""
        for hosted in list(self._hosted.values()):
            with contextlib.suppress(RaftkaError):
                await self._io.run(hosted.log.checkpoint_high_watermark)

    # ---- damaged logs ----

    def report_damage(self, partition: Partition) -> None:
        """``partition``'s log holds damage (found by a read, the scrubber, or on open):
        a follower truncates it away and fetches it again from its leader; a leader gives up
        leadership to a healthy in-sync replica (AlterPartition with ``leader_resigns``) and
        is then repaired as a follower. A leader with no other in-sync replica keeps serving
        the intact offsets below the damage and refuses the rest (reported)."""
        key = (partition.topic, partition.partition)
        if partition.log.damage is None or key in self._repairing:
            return
        self._repairing.add(key)
        self._spawn(self._repair(partition, key))

    def on_scrub_damage(self, found: FoundDamage) -> None:
        """The scrubber's callback."""
        hosted = self._hosted.get((found.log.topic, found.log.partition))
        if hosted is not None and hosted.log is found.log:
            self.report_damage(hosted)

    async def _repair(self, hosted: Partition, key: tuple[str, int]) -> None:
        try:
            if hosted.is_leader:
                await self._alter.resign(hosted)
            else:
                await self._truncate_damage(hosted)
        except RaftkaError as e:
            log.warning(
                "log_damage_repair_failed",
                topic=hosted.topic,
                partition=hosted.partition,
                error=e.message,
            )
        finally:
            self._repairing.discard(key)

    async def _truncate_damage(self, hosted: Partition) -> None:
        damage = hosted.log.damage
        if damage is None:
            return
        new_end = await self._io.run(hosted.log.truncate_damage)
        log.warning(
            "log_damage_repairing",
            topic=hosted.topic,
            partition=hosted.partition,
            offset=damage.offset,
            log_end_offset=new_end,
            action="fetch_again_from_leader",
        )

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- reconciling with the metadata image ----

    async def run(self) -> None:
        """Reconcile after every metadata change, forever."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:
                # One bad partition must not stop the broker from following metadata: log it
                # and try again (everything) soon, even if no other change comes.
                log.exception("reconcile_failed", metadata_index=self._follower.index)
                asyncio.get_running_loop().call_later(RECONCILE_RETRY_S, self._dirty.set)

    def wake(self) -> None:
        """Reconcile every partition again (the broker registered: roles may be taken now)."""
        self._follower.put_back(MetadataChanges(everything=True))
        self._dirty.set()

    def registration_applied(self) -> bool:
        """Whether this incarnation is registered and the local image has applied its
        registration record (the broker epoch is that record's metadata index): only then does
        the image reflect what the controller decided about this incarnation."""
        epoch = self._broker_epoch()
        if epoch < 0 or self._follower.index < epoch:
            return False
        reg = self._follower.image.broker(self.broker_id)
        return reg is not None and reg.epoch == epoch

    async def stop(self) -> None:
        await self._fetchers.stop()
        await cancel_and_wait(list(self._background))

    async def reconcile(self) -> None:
        async with self._reconcile_lock:
            if not self.registration_applied():
                if not self._waiting_logged:
                    self._waiting_logged = True
                    log.info(
                        "replica_roles_waiting_for_registration",
                        broker_id=self.broker_id,
                        broker_epoch=self._broker_epoch(),
                        metadata_index=self._follower.index,
                    )
                return
            changes = self._follower.take_changes()
            try:
                await self._reconcile(changes)
            except BaseException:
                self._follower.put_back(MetadataChanges(everything=True))  # all, next time
                raise

    async def _reconcile(self, changes: MetadataChanges) -> None:
        """Reconcile the partitions ``changes`` names (all of them after a broker change or
        a snapshot): each change costs in proportion to what it touched, not to the
        partitions this broker hosts."""
        image = self._follower.image
        wanted: dict[tuple[str, int], tuple[str, PartitionState]] = {}
        if changes.everything:
            scope = [(name, image.topics[name]) for name in image.topics]
        else:
            scope = [(n, t) for n in changes.topics if (t := image.topic(n)) is not None]
        for name, topic in scope:
            for pid, state in topic.partitions.items():
                if self.broker_id in state.replicas:
                    wanted[(name, pid)] = (topic.topic_id, state)
        if not changes.everything:
            for name, pid in changes.partitions:
                t = image.topic(name)
                found = None if t is None else t.partitions.get(pid)
                if t is not None and found is not None and self.broker_id in found.replicas:
                    wanted[(name, pid)] = (t.topic_id, found)
        for key in [
            k
            for k, h in self._hosted.items()
            if changes.covers(*k) and wanted.get(k, ("",))[0] != h.topic_id
        ]:
            self._followed.pop(key, None)
            await self._remove(self._hosted.pop(key))
        configs_of: dict[str, dict[str, str]] = {}
        for name, _pid in wanted:
            if name not in configs_of:
                configs_of[name] = dict(image.topic_configs(name))
        new = [
            NewPartitionLog(name, pid, topic_id, configs_of[name])
            for (name, pid), (topic_id, _state) in wanted.items()
            if (name, pid) not in self._hosted
        ]
        if new:
            await self._add_many(new)

        async def one(key: tuple[str, int]) -> None:
            (name, pid), (_topic_id, state) = key, wanted[key]
            hosted = self._hosted[key]
            self._followed.pop(key, None)
            await self._update(hosted, state, configs_of[name])
            if hosted.log.damage is not None:
                if hosted.is_leader:
                    self.report_damage(hosted)
                else:  # before its fetcher asks from past the damage
                    await self._truncate_damage(hosted)
            if not hosted.is_leader and state.leader >= 0:
                address = self._address_of(state.leader)
                if address is not None:
                    self._followed[key] = (
                        state.leader,
                        address,
                        FollowedPartition(
                            name, pid, hosted.log, state.leader_epoch, state.leader_recovery_state
                        ),
                    )

        # Partitions are independent: their disk work (a new leader's epoch) overlaps on the
        # I/O threads instead of one partition waiting for the previous one.
        keys = [key for key in wanted if key in self._hosted]
        for i in range(0, len(keys), RECONCILE_CONCURRENCY):
            await asyncio.gather(*(one(k) for k in keys[i : i + RECONCILE_CONCURRENCY]))
        followed: dict[int, tuple[str, dict[tuple[str, int], FollowedPartition]]] = {}
        for key, (leader, address, part) in self._followed.items():
            followed.setdefault(leader, (address, {}))[1][key] = part
        await self._fetchers.update(followed)
        self._silence.expect(
            {
                r
                for h in self._hosted.values()
                if h.leader_state is not None
                for r in h.leader_state.replicas
                if r != self.broker_id
            },
            monotonic_ms(),
        )

    def _address_of(self, broker_id: int) -> str | None:
        reg = self._follower.image.broker(broker_id)
        if reg is None:
            return None
        # Replication is broker-to-broker traffic: the leader's INTERNAL listener if any.
        endpoint = reg.internal_endpoint()
        return None if endpoint is None else f"{endpoint.host}:{endpoint.port}"

    async def _add_many(self, new: list[NewPartitionLog]) -> None:
        """Host the partitions of ``new``: their logs are opened or created in one call on an
        I/O thread (which creates many at once), not one thread hop and fsync wait each."""
        try:
            plogs = await self._io.run(self._logs.get_or_create_many, new)
        except Exception:
            # Some could not be opened: host the ones that were (reconcile logs the error
            # and retries the rest on the next metadata change).
            found = [(n, self._logs.get(n.topic, n.partition)) for n in new]
            self._host([(n, p) for n, p in found if p is not None])
            raise
        self._host(list(zip(new, plogs, strict=True)))

    def _host(self, logs: list[tuple[NewPartitionLog, PartitionLog]]) -> None:
        for new, plog in logs:
            self._hosted[(new.topic, new.partition)] = Partition(
                new.topic,
                new.partition,
                new.topic_id,
                plog,
                dict(new.configs or {}),
                broker_id=self.broker_id,
                io=self._io.run,
                cluster=self,
            )
            log.debug("partition_hosted", topic=new.topic, partition=new.partition)
        if logs:
            log.info("partitions_hosted", count=len(logs), hosted=len(self._hosted))

    async def _remove(self, hosted: Partition) -> None:
        hosted.leader_state = None
        hosted.notify_data()
        hosted.notify_hw()
        await self._io.run(self._logs.delete, hosted.topic, hosted.partition)
        log.info("partition_removed", topic=hosted.topic, partition=hosted.partition)

    async def _update(
        self, hosted: Partition, state: PartitionState, configs: dict[str, str]
    ) -> None:
        if configs != hosted.configs:
            await hosted.update_configs(configs)
        is_leader = state.leader == self.broker_id
        new_role = hosted.is_leader != is_leader or hosted.leader_epoch != state.leader_epoch
        if new_role:
            hosted.is_leader, hosted.leader_epoch = is_leader, state.leader_epoch
            hosted.leader_state = None
            if is_leader:
                try:
                    epoch_start = await self._io.run(
                        hosted.log.start_leader_epoch, state.leader_epoch
                    )
                except StaleLeaderEpochError:
                    # Metadata still being replayed after a restart: this epoch is older than
                    # what the log holds, so a newer leadership record is on its way.
                    hosted.leader_epoch = -1
                    return
                hosted.leader_state = LeaderReplicaState(
                    leader_id=self.broker_id,
                    replicas=tuple(state.replicas),
                    isr=tuple(state.isr),
                    leader_epoch=state.leader_epoch,
                    partition_epoch=state.partition_epoch,
                    epoch_start_offset=epoch_start,
                    high_watermark=hosted.log.high_watermark,
                    leader_log_end_offset=hosted.log.log_end_offset,
                    lag_time_max_ms=self._lag_time_max_ms,
                    min_insync_replicas=hosted.min_insync_replicas,
                    became_leader_ms=monotonic_ms(),
                )
                hosted.publish_high_watermark()
                if hosted.leader_state.on_leader_append(hosted.log.log_end_offset):
                    hosted.publish_high_watermark()
            hosted.notify_data()
            hosted.notify_hw()
            log.info(
                "partition_role_changed",
                topic=hosted.topic,
                partition=hosted.partition,
                leader=is_leader,
                epoch=state.leader_epoch,
            )
            return
        leader_state = hosted.leader_state
        if leader_state is not None and (
            tuple(state.isr) != leader_state.isr
            or state.partition_epoch != leader_state.partition_epoch
            or tuple(state.replicas) != leader_state.replicas
        ):
            leader_state.replicas = tuple(state.replicas)
            for r in leader_state.replicas:
                if r != self.broker_id:
                    leader_state.progress.setdefault(r, ReplicaProgress())
            if (
                state.partition_epoch >= leader_state.partition_epoch
                and leader_state.on_isr_committed(tuple(state.isr), state.partition_epoch)
            ):
                hosted.publish_high_watermark()
            hosted.notify_hw()  # waiting acks=all writes re-check min.insync.replicas
