"""Fences brokers whose heartbeats lapse, or that peers report unreachable and a probe
confirms, on the active controller.

A fresh ClusterManager (with fresh in-memory sessions) is made every time this controller
becomes active, so every registered broker gets a full session timeout after a failover before
it can be fenced. A background task fences expired brokers one at a time.

Peers' reports (``BrokerHeartbeatRequest.unreachable_brokers``) fence sooner: the controller
probes a reported broker itself and fences it when the probe fails and the broker has not
heartbeated since (control/liveness.py holds the rules; broker_probe.py the probe).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import structlog

from raftka.common.clock import monotonic_ms
from raftka.common.errors import RaftkaError
from raftka.common.ids import BrokerId, Index
from raftka.common.metadata.image import MetadataImage
from raftka.common.tasks import cancel_and_wait
from raftka.controller.active import ActiveController
from raftka.controller.broker_probe import PROBE_TIMEOUT_S, probe_health
from raftka.controller.control.cluster import ClusterManager, fence_slice
from raftka.controller.control.liveness import Probe, ProbeOutcome, UnreachableBrokers
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.sessions import BrokerSessions

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 0.1
STALL_FORGIVEN_AFTER_MS = 100
"""A fence check this much later than due means the controller's loop was stalled."""

Prober = Callable[[str, float], Awaitable[ProbeOutcome]]
"""``(address, timeout_s) -> outcome``: the probe of a reported broker."""


class BrokerSessionMonitor:
    def __init__(
        self,
        active: ActiveController,
        cluster_id: str,
        session_timeout_ms: int,
        *,
        prober: Prober = probe_health,
        probe_timeout_s: float = PROBE_TIMEOUT_S,
    ) -> None:
        self._active = active
        self._cluster_id = cluster_id
        self._timeout_ms = session_timeout_ms
        self._prober = prober
        self._probe_timeout_s = probe_timeout_s
        self._manager: ClusterManager | None = None
        self._unreachable = UnreachableBrokers()
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        active.on_became_active(self._reset)

    def _reset(self) -> None:
        self._manager = ClusterManager(
            self._cluster_id, BrokerSessions(self._timeout_ms, monotonic_ms())
        )
        self._unreachable = UnreachableBrokers()

    @property
    def manager(self) -> ClusterManager:
        if self._manager is None or not self._active.is_active:
            raise self._active.not_controller()
        return self._manager

    def start(self) -> None:
        self._task = asyncio.create_task(self._fence_loop(), name="broker-session-monitor")

    async def stop(self) -> None:
        await cancel_and_wait([self._task, *self._probes])

    # ---- session expiry ----

    def _fence_one(self, image: MetadataImage, _index: Index) -> ControllerResult[BrokerId | None]:
        if self._manager is None:
            return ControllerResult((), None)
        return self._manager.fence_one_expired_broker(image, monotonic_ms())

    async def _fence_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slept_from = loop.time()
            await asyncio.sleep(CHECK_INTERVAL_S)
            stalled_ms = int((loop.time() - slept_from - CHECK_INTERVAL_S) * 1000)
            if stalled_ms > STALL_FORGIVEN_AFTER_MS and self._manager is not None:
                # The loop could not read heartbeats meanwhile: not the brokers' silence.
                self._manager.sessions.forgive(stalled_ms)
                log.info("broker_sessions_extended_after_stall", stalled_ms=stalled_ms)
            if not self._active.is_active or self._manager is None:
                continue
            try:
                fenced = await self._active.write(self._fence_one)
            except RaftkaError as e:
                log.warning("broker_fencing_failed", error=e.message)
                continue
            if fenced is not None:
                log.info(
                    "broker_fenced_session_expired",
                    broker_id=fenced,
                    session_timeout_ms=self._timeout_ms,
                )

    # ---- peers' reports ----

    def report_unreachable(self, reporter: int, suspects: Iterable[tuple[int, int]]) -> None:
        """``reporter`` (whose heartbeat was accepted) could not reach ``suspects`` ((broker
        id, broker epoch) pairs): probe each report that counts, in the background."""
        if not self._active.is_active or self._manager is None:
            return
        image = self._active.working_image()
        now = monotonic_ms()
        for suspect, epoch in suspects:
            probe = self._unreachable.report(image, reporter, suspect, epoch, now)
            if probe is None:
                continue
            reg = image.broker(suspect)
            endpoint = None if reg is None else reg.internal_endpoint()
            if endpoint is None:
                self._unreachable.answered(probe, now)  # nowhere to probe: leave it to sessions
                continue
            log.info("broker_reported_unreachable", broker_id=suspect, reporter=reporter)
            task = asyncio.create_task(
                self._probe(probe, f"{endpoint.host}:{endpoint.port}"),
                name=f"probe-broker-{suspect}",
            )
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)

    async def _probe(self, probe: Probe, address: str) -> None:
        outcome = await self._prober(address, self._probe_timeout_s)
        if outcome is ProbeOutcome.ANSWERED:
            self._unreachable.answered(probe, monotonic_ms())
            log.info("broker_probe_answered", broker_id=probe.broker_id, reporter=probe.reporter)
            return
        try:
            fenced = await self._active.write(
                lambda image, _i: self._fence_unreachable(image, probe, outcome)
            )
        except RaftkaError as e:
            log.warning("broker_fencing_failed", broker_id=probe.broker_id, error=e.message)
            return
        log.info(
            "broker_fenced_unreachable" if fenced else "broker_probe_failed_not_fenced",
            broker_id=probe.broker_id,
            broker_epoch=probe.broker_epoch,
            reporter=probe.reporter,
            outcome=outcome.value,
            probe_ms=monotonic_ms() - probe.started_ms,
        )

    def _fence_unreachable(
        self, image: MetadataImage, probe: Probe, outcome: ProbeOutcome
    ) -> ControllerResult[bool]:
        manager = self._manager
        if manager is None:
            return ControllerResult((), False)
        last_contact = manager.sessions.last_contact_ms(probe.broker_id)
        if not self._unreachable.confirm(
            probe, outcome, image, last_contact_ms=last_contact, now_ms=monotonic_ms()
        ):
            return ControllerResult((), False)
        records, more = fence_slice(image, probe.broker_id)
        return ControllerResult(tuple(records), bool(records), more=more)
