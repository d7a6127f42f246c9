"""Fences brokers whose heartbeats lapse, on the active controller.

A fresh ClusterManager (with fresh in-memory sessions) is made every time this controller
becomes active, so every registered broker gets a full session timeout after a failover before
it can be fenced. A background task fences expired brokers one at a time.
"""

from __future__ import annotations

import asyncio

import structlog

from raftka.common.clock import monotonic_ms
from raftka.common.errors import RaftkaError
from raftka.common.ids import BrokerId, Index
from raftka.common.metadata.image import MetadataImage
from raftka.common.tasks import cancel_and_wait
from raftka.controller.active import ActiveController
from raftka.controller.control.cluster import ClusterManager
from raftka.controller.control.result import ControllerResult
from raftka.controller.control.sessions import BrokerSessions

log = structlog.get_logger(__name__)

CHECK_INTERVAL_S = 0.1


class BrokerSessionMonitor:
    def __init__(self, active: ActiveController, cluster_id: str, session_timeout_ms: int) -> None:
        self._active = active
        self._cluster_id = cluster_id
        self._timeout_ms = session_timeout_ms
        self._manager: ClusterManager | None = None
        self._task: asyncio.Task[None] | None = None
        active.on_became_active(self._reset)

    def _reset(self) -> None:
        self._manager = ClusterManager(
            self._cluster_id, BrokerSessions(self._timeout_ms, monotonic_ms())
        )

    @property
    def manager(self) -> ClusterManager:
        if self._manager is None or not self._active.is_active:
            raise self._active.not_controller()
        return self._manager

    def start(self) -> None:
        self._task = asyncio.create_task(self._fence_loop(), name="broker-session-monitor")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    def _fence_one(self, image: MetadataImage, _index: Index) -> ControllerResult[BrokerId | None]:
        if self._manager is None:
            return ControllerResult((), None)
        return self._manager.fence_one_expired_broker(image, monotonic_ms())

    async def _fence_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
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
