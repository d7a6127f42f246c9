"""The standard gRPC health service (``grpc.health.v1.Health``) on a node's server.

Kubernetes' native ``grpc:`` readiness probe, grpc_health_probe, Envoy and most service meshes
ask this service, and nothing else, whether a server is ready. A node answers NOT_SERVING until
its role is really usable (a broker registered and unfenced; a controller that knows the
quorum's leader) and again from the moment it starts shutting down, so a load balancer stops
sending it clients before it stops answering them.

Readiness is polled, not pushed: the roles already keep the facts (a broker's fence state, a
controller's leader id) and a poll of a cheap predicate every fraction of a second needs no
hook in their state machines. Both the overall status (service name ``""``, what Kubernetes
asks) and the role's own service name carry the same status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from raftka.common.tasks import cancel_and_wait

log = structlog.get_logger(__name__)

SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING

DEFAULT_POLL_INTERVAL_S = 0.25
"""How often readiness is re-evaluated: well inside any probe period, and cheap."""


class NodeHealth:
    """The health service of one gRPC server, reporting ``ready()`` of one role.

    ``service`` is the role's service name (e.g. ``raftka.v1.BrokerService``), reported as well
    as the overall status ``""``. Starts NOT_SERVING.
    """

    def __init__(
        self,
        service: str,
        ready: Callable[[], bool],
        *,
        poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    ) -> None:
        self.service = service
        self._ready = ready
        self._poll_interval_s = poll_interval_s
        self._servicer = health_aio.HealthServicer()
        self._serving: bool | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def add_to_server(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def start(self) -> None:
        """Report NOT_SERVING now, then follow ``ready()`` until :meth:`stop`."""
        await self._report(False)
        self._task = asyncio.create_task(self._poll(), name=f"health-{self.service}")

    @property
    def serving(self) -> bool:
        return bool(self._serving)

    async def stop(self) -> None:
        """Report NOT_SERVING for good (the node is shutting down) and stop polling."""
        self._stopping = True
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        await self._report(False)

    async def _poll(self) -> None:
        while not self._stopping:
            try:
                ready = self._ready()
            except Exception as exc:  # a failing check means not ready, never a dead poller
                log.warning("health_check_failed", service=self.service, error=str(exc))
                ready = False
            await self._report(ready)
            await asyncio.sleep(self._poll_interval_s)

    async def _report(self, serving: bool) -> None:
        if serving == self._serving:
            return
        self._serving = serving
        status = SERVING if serving else NOT_SERVING
        for name in ("", self.service):
            await self._servicer.set(name, status)
        log.info("health_status", service=self.service, serving=serving)
