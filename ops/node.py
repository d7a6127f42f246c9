"""One node process: its config file and the roles it runs (``raftka server``).

A node runs the controller role, the broker role, or both ("combined"). On SIGTERM/SIGINT the
broker role shuts down first (controlled shutdown: leadership moves away), then the controller
role (a leader hands Raft leadership over).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import structlog
from prometheus_client import CollectorRegistry, ProcessCollector

from raftka.broker.config import BrokerConfig
from raftka.common.errors import ConfigFileError
from raftka.common.faults import FAULTS, FaultSettings
from raftka.common.loop_lag import LoopLagProbe
from raftka.common.metrics import MetricsExporter, MetricsSettings
from raftka.common.metrics.rpc import RpcMetrics
from raftka.common.rpc.channels import set_default_security
from raftka.common.security.listeners import BROKER_KEYS, CONTROLLER_KEYS, plan_listeners
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import ChannelSecurity, request_reload
from raftka.controller.config import ControllerConfig, VoterAddress

log = structlog.get_logger(__name__)

ROLES = ("controller", "broker")


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: str = "info"
    format: Literal["json", "console"] = "json"


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """A whole node's config file."""

    node_id: int = -1
    data_dir: Path = Path("")
    roles: tuple[str, ...] = ("controller",)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    log: LogSettings = field(default_factory=LogSettings)
    faults: FaultSettings = field(default_factory=FaultSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def __post_init__(self) -> None:
        if self.node_id < 0:
            raise ConfigFileError("node_id is required (a non-negative integer)")
        if not str(self.data_dir) or str(self.data_dir) == ".":
            raise ConfigFileError("data_dir is required")
        if not self.roles:
            raise ConfigFileError("roles: name at least one of 'controller', 'broker'")
        unknown = set(self.roles) - set(ROLES)
        if unknown:
            raise ConfigFileError(
                f"roles: unknown role(s) {sorted(unknown)}; use 'controller' and/or 'broker'"
            )
        if "controller" in self.roles:
            voters = self.controller.voter_addresses
            if self.node_id not in {v.node_id for v in voters}:
                raise ConfigFileError(
                    f"node_id {self.node_id} is not among controller.voters ({self.controller.voters})"
                )
        if "broker" in self.roles and not self.controller_addresses:
            raise ConfigFileError(
                "a broker needs broker.controllers (or controller.voters) to find the controllers"
            )
        # Listener layouts that would lock other nodes out are refused with the config.
        if "controller" in self.roles:
            plan_listeners(
                self.security,
                CONTROLLER_KEYS,
                client=self.controller.client_listen,
                internal=self.listen_address,
            )
        if "broker" in self.roles:
            plan_listeners(
                self.security,
                BROKER_KEYS,
                client=self.broker.listen,
                internal=self.broker.internal_listen,
            )

    @property
    def self_voter(self) -> VoterAddress:
        return next(v for v in self.controller.voter_addresses if v.node_id == self.node_id)

    @property
    def listen_address(self) -> str:
        """The controller role's listen address."""
        return self.controller.listen or self.self_voter.address

    @property
    def controller_addresses(self) -> list[str]:
        if self.broker.controllers:
            return [a.strip() for a in self.broker.controllers.split(",") if a.strip()]
        if self.controller.voters:
            return [v.address for v in self.controller.voter_addresses]
        return []


def _reload_tls() -> None:
    log.info("sighup_tls_reload_requested")
    request_reload()


async def run_node(config: NodeConfig) -> None:
    FAULTS.configure(config.faults, config.node_id)
    # Every channel this node opens to other nodes presents its certificate.
    set_default_security(ChannelSecurity.for_node(config.security))
    if config.faults.enabled:
        log.warning("fault_injection_enabled", node_id=config.node_id)
    # One registry for the whole node (both roles of a combined node report into it), never
    # prometheus_client's global one; the RPC metrics are kept whether or not they are served.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    interceptors = [RpcMetrics(registry).interceptor()]
    controller = broker = None
    if "controller" in config.roles:
        from raftka.controller.server import ControllerServer

        controller = ControllerServer(
            config.node_id,
            config.data_dir,
            config.controller,
            config.security,
            registry=registry,
            interceptors=interceptors,
        )
    if "broker" in config.roles:
        from raftka.broker.server import BrokerServer

        broker = BrokerServer(
            config.node_id,
            config.data_dir,
            config.broker,
            config.controller_addresses,
            config.security,
            registry=registry,
            interceptors=interceptors,
        )
    exporter = MetricsExporter(registry, config.metrics.listen) if config.metrics.enabled else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP: re-read the TLS files on the next handshake (rotation without a restart).
    loop.add_signal_handler(signal.SIGHUP, _reload_tls)
    if exporter is not None:
        await exporter.start()
    lag_probe = LoopLagProbe()
    lag_probe.start()
    try:
        if controller is not None:
            await controller.start()
        try:
            if broker is not None:
                await broker.start()
            await stop.wait()
        finally:
            if broker is not None:
                await broker.shutdown()
            if controller is not None:
                await controller.shutdown()
    finally:
        await lag_probe.stop()
        if exporter is not None:
            await exporter.stop()
