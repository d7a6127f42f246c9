"""Gives leadership back to preferred replicas, periodically, on the active controller
(Kafka's auto.leader.rebalance.enable; the planning is ``plan_leader_rebalance``)."""

from __future__ import annotations

import asyncio

import structlog

from raftka.common.errors import RaftkaError
from raftka.common.ids import Index
from raftka.common.metadata.image import MetadataImage
from raftka.common.tasks import cancel_and_wait
from raftka.controller.active import ActiveController
from raftka.controller.control.elections import LeaderMove, plan_leader_rebalance
from raftka.controller.control.result import ControllerResult

log = structlog.get_logger(__name__)


class LeaderRebalancer:
    def __init__(
        self,
        active: ActiveController,
        *,
        enabled: bool,
        interval_ms: int,
        imbalance_percentage: int,
    ) -> None:
        self._active = active
        self._enabled = enabled
        self._interval_s = interval_ms / 1000
        self._percentage = imbalance_percentage
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._enabled:
            self._task = asyncio.create_task(self._loop(), name="leader-rebalancer")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    def _plan(self, image: MetadataImage, _index: Index) -> ControllerResult[list[LeaderMove]]:
        return plan_leader_rebalance(image, imbalance_percentage=self._percentage)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            if not self._active.is_active:
                continue
            try:
                moves = await self._active.write(self._plan)
            except RaftkaError as e:
                log.warning("leader_rebalance_failed", error=e.message)
                continue
            if moves:
                log.info(
                    "leaders_rebalanced",
                    count=len(moves),
                    partitions=[
                        f"{m.topic}-{m.partition}:{m.old_leader}->{m.new_leader}"
                        for m in moves[:20]
                    ],
                )
