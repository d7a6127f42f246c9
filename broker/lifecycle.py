"""The broker side of the broker lifecycle: register with the controller quorum, follow the
metadata log, and heartbeat.

A broker registers with a fresh incarnation id and gets a broker epoch; it starts fenced and
is unfenced by the active controller once its heartbeats report a metadata index at or past its
own registration. ``shutdown()`` performs a controlled shutdown: heartbeats ask to shut down
until the controller answers that the broker leads nothing.

Peers found unreachable (:meth:`BrokerLifecycle.report_unreachable`: a leader its follower
fetches cannot reach, a follower that stopped fetching) go to the controller in the next
heartbeat, which is sent at once rather than at the next interval: the controller probes them
and fences a dead one long before its session would expire.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from contextlib import suppress

import structlog

from raftka.broker.metadata_follower import MetadataFollower
from raftka.common import errors
from raftka.common.clock import monotonic_ms
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.tasks import cancel_and_wait
from raftka.v1 import common_pb2
from raftka.v1 import controller_pb2 as pb

log = structlog.get_logger(__name__)

REPORT_INTERVAL_MS = 500
"""The same peer is reported at most this often (a heartbeat sent early for it)."""
MIN_HEARTBEAT_GAP_S = 0.05
"""Early heartbeats are at least this far apart."""


class BrokerLifecycle:
    def __init__(
        self,
        controllers: Sequence[str],
        *,
        broker_id: int,
        cluster_id: str,
        listeners: Sequence[common_pb2.Endpoint],
        rack: str = "",
        heartbeat_interval_s: float = 0.5,
        follower: MetadataFollower | None = None,
    ) -> None:
        self.broker_id = broker_id
        self.cluster_id = cluster_id
        self.incarnation_id = str(uuid.uuid4())
        self.listeners = list(listeners)
        self.rack = rack
        self.heartbeat_interval_s = heartbeat_interval_s
        # A hung controller (paused, partitioned) must cost less than a session timeout, so each
        # attempt is short and the client moves on to the next controller.
        self.client = ControllerClient(
            controllers,
            timeout_s=max(5.0, heartbeat_interval_s * 4),
            attempt_timeout_s=max(0.25, min(2.0, heartbeat_interval_s * 2)),
        )
        self._own_follower = follower is None
        self.follower = follower or MetadataFollower(self.client)
        self.broker_epoch = -1
        self.active_controller_id = -1
        """The active controller that answered the last heartbeat (-1 before the first)."""
        self.fenced = True
        self.caught_up = False
        self._want_shutdown = False
        self._shutdown_done = asyncio.Event()
        self._unfenced = asyncio.Event()
        self._registration_listeners: list[Callable[[], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._unreachable: dict[int, int] = {}
        """Peers to report in the next heartbeat: broker id -> its broker epoch."""
        self._reported_ms: dict[int, int] = {}
        self._heartbeat_now = asyncio.Event()

    async def start(self, registration_timeout_s: float = 60.0) -> None:
        """Register, then follow the metadata log and heartbeat in the background.

        Registration is retried until ``registration_timeout_s`` while an earlier
        incarnation's session is still live, and while no controller answers in time (a
        quorum electing, or controllers slowed by a loaded machine): a broker restarted into
        a struggling cluster waits for it rather than exiting after one client timeout."""
        deadline_ms = monotonic_ms() + int(registration_timeout_s * 1000)
        attempt = 0
        while True:
            try:
                await self.register()
                break
            except errors.RaftkaError as e:
                retry = e.retriable or isinstance(e, errors.DuplicateBrokerRegistrationError)
                if not retry or monotonic_ms() >= deadline_ms:
                    raise
                attempt += 1
                log.warning(
                    "broker_registration_retry",
                    broker_id=self.broker_id,
                    attempt=attempt,
                    error=e.message,
                )
                await asyncio.sleep(self.heartbeat_interval_s)
        self._tasks = [
            asyncio.create_task(self._heartbeat_loop(), name=f"broker-{self.broker_id}-heartbeat")
        ]
        if self._own_follower:
            self._tasks.append(
                asyncio.create_task(self.follower.run(), name=f"broker-{self.broker_id}-watch")
            )

    async def register(self) -> None:
        request = pb.RegisterBrokerRequest(
            broker_id=self.broker_id,
            cluster_id=self.cluster_id,
            incarnation_id=self.incarnation_id,
            listeners=self.listeners,
            rack=self.rack,
            previous_broker_epoch=self.broker_epoch,
        )
        response: pb.RegisterBrokerResponse = await self.client.call(
            lambda s, t: s.RegisterBroker(request, timeout=t)
        )
        self.broker_epoch = response.broker_epoch
        log.info("broker_registered", broker_id=self.broker_id, broker_epoch=self.broker_epoch)
        for listener in self._registration_listeners:
            listener()

    def add_registration_listener(self, listener: Callable[[], None]) -> None:
        """``listener`` runs (on the event loop) after every successful registration."""
        self._registration_listeners.append(listener)

    async def wait_unfenced(self) -> None:
        await self._unfenced.wait()

    @property
    def metadata_index(self) -> int:
        return self.follower.index

    def report_unreachable(self, broker_id: int, broker_epoch: int) -> None:
        """``broker_id`` (incarnation ``broker_epoch``) could not be reached: tell the
        controller in a heartbeat sent now (at most every REPORT_INTERVAL_MS per peer)."""
        if broker_id == self.broker_id or broker_epoch < 0:
            return
        now = monotonic_ms()
        if now - self._reported_ms.get(broker_id, -REPORT_INTERVAL_MS) < REPORT_INTERVAL_MS:
            return
        self._reported_ms[broker_id] = now
        self._unreachable[broker_id] = broker_epoch
        log.info("peer_unreachable_reported", broker_id=self.broker_id, peer=broker_id)
        self._heartbeat_now.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self.heartbeat()
            except errors.StaleBrokerEpochError:
                log.warning("broker_epoch_stale_reregistering", broker_id=self.broker_id)
                with suppress(errors.RaftkaError):
                    await self.register()
            except errors.RaftkaError as e:
                log.warning("broker_heartbeat_failed", broker_id=self.broker_id, error=e.message)
            if self._shutdown_done.is_set():
                return
            await asyncio.sleep(MIN_HEARTBEAT_GAP_S)
            with suppress(TimeoutError):
                await asyncio.wait_for(
                    self._heartbeat_now.wait(),
                    max(0.0, self.heartbeat_interval_s - MIN_HEARTBEAT_GAP_S),
                )

    async def heartbeat(self) -> pb.BrokerHeartbeatResponse:
        if not await FAULTS.admit(FaultPath.HEARTBEAT, None, Direction.OUTBOUND):
            raise errors.NetworkError("heartbeat dropped by fault injection")
        self._heartbeat_now.clear()
        reports, self._unreachable = self._unreachable, {}
        request = pb.BrokerHeartbeatRequest(
            broker_id=self.broker_id,
            broker_epoch=self.broker_epoch,
            current_metadata_index=self.metadata_index,
            want_shut_down=self._want_shutdown,
            unreachable_brokers=[
                pb.BrokerEpochPair(broker_id=b, broker_epoch=e) for b, e in reports.items()
            ],
        )
        try:
            response: pb.BrokerHeartbeatResponse = await self.client.call(
                lambda s, t: s.BrokerHeartbeat(request, timeout=t)
            )
        except errors.RaftkaError:
            if reports:  # not delivered: in the next one, sent without waiting an interval
                for b, e in reports.items():
                    self._unreachable.setdefault(b, e)
                self._heartbeat_now.set()
            raise
        if response.is_fenced != self.fenced:
            log.info("broker_fence_state", broker_id=self.broker_id, fenced=response.is_fenced)
        self.fenced = response.is_fenced
        self.caught_up = response.is_caught_up
        self.active_controller_id = response.controller_id
        if not self.fenced:
            self._unfenced.set()
        else:
            self._unfenced.clear()
        if response.should_shut_down:
            self._shutdown_done.set()
        return response

    async def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Controlled shutdown; returns whether the controller confirmed it in time."""
        self._want_shutdown = True
        try:
            await asyncio.wait_for(self._shutdown_done.wait(), timeout_s)
            confirmed = True
        except TimeoutError:
            confirmed = False
        await self.close()
        return confirmed

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        await self.client.close()
