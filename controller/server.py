"""One controller process: storage, Raft runtime, active controller and gRPC services.

Started by ``raftka server --config node.toml`` (raftka.ops.node). ``shutdown()`` is
graceful: a leader first hands leadership to the most caught-up voter (TimeoutNow) and waits
briefly for the new leader, so a planned restart costs no election timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import grpc
import structlog
from prometheus_client import CollectorRegistry

from raftka.common.data_dir import METADATA_LOG_DIR, check_data_dir
from raftka.common.fault_service import add_fault_service
from raftka.common.faults import FAULTS
from raftka.common.ids import NodeId
from raftka.common.rpc.channels import add_listeners, new_server
from raftka.common.rpc.health import NodeHealth
from raftka.common.security.authentication import authentication_interceptor
from raftka.common.security.guard import guard_for
from raftka.common.security.inter_node import inter_node_interceptors
from raftka.common.security.listeners import CONTROLLER_KEYS, plan_listeners
from raftka.common.security.settings import SecuritySettings
from raftka.controller.acl_service import AclServicer
from raftka.controller.active import ActiveController
from raftka.controller.broker_sessions import BrokerSessionMonitor
from raftka.controller.config import ControllerConfig
from raftka.controller.leader_rebalance import LeaderRebalancer
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.metrics import ControllerCollector, ControllerMetrics, RaftView
from raftka.controller.quorum.raft_storage import RaftStorage
from raftka.controller.quorum.runtime import QuorumRuntime
from raftka.controller.quorum.transport import RaftServicer, RaftTransport
from raftka.controller.quota_service import QuotaServicer
from raftka.controller.raft.config import RaftConfig
from raftka.controller.raft.status import Role
from raftka.controller.service import ControllerServicer
from raftka.controller.user_service import UserServicer
from raftka.v1 import controller_pb2, controller_pb2_grpc, raft_pb2_grpc, security_pb2_grpc

log = structlog.get_logger(__name__)

SHUTDOWN_TRANSFER_WAIT_S = 2.0


class ControllerServer:
    """The controller role of node ``node_id``, keeping its Raft log under ``data_dir``."""

    def __init__(
        self,
        node_id: int,
        data_dir: Path,
        config: ControllerConfig,
        security: SecuritySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    ) -> None:
        """``registry``: the node's metrics registry (a private one when None);
        ``interceptors``: run around every call this role's server takes, before the
        authentication and authorization ones."""
        self.config = config
        self.security = security or SecuritySettings()
        registry = registry if registry is not None else CollectorRegistry()
        identity = check_data_dir(data_dir, node_id)
        self.cluster_id = identity.cluster_id
        voters = config.voter_addresses
        self.addresses = {NodeId(v.node_id): v.address for v in voters}
        self.node_id = NodeId(node_id)
        self.listen = config.listen or self.addresses[self.node_id]
        # controller.listen (voters, brokers) and, if set, controller.client_listen (admin
        # clients): checked before anything starts.
        self.listeners = plan_listeners(
            self.security, CONTROLLER_KEYS, client=config.client_listen, internal=self.listen
        )
        self.state = MetadataStateMachine()
        storage = RaftStorage(data_dir / METADATA_LOG_DIR)  # created if absent
        self.runtime = QuorumRuntime(
            node_id=self.node_id,
            voters=list(self.addresses),
            raft_config=RaftConfig(
                election_timeout_ticks=config.election_ticks,
                heartbeat_ticks=config.heartbeat_ticks,
            ),
            storage=storage,
            transport=RaftTransport(self.cluster_id, self.node_id, self.addresses),
            state_machine=self.state,
            tick_s=config.tick_ms / 1000,
            snapshot_after_bytes=config.snapshot_after_bytes,
        )
        self.active = ActiveController(
            self.runtime,
            self.state,
            self.addresses,
            config.request_timeout_ms / 1000,
        )
        metrics = ControllerMetrics(registry, lambda: self.runtime.leader_id == self.node_id)
        self.state.before_apply = metrics.before_apply
        registry.register(
            ControllerCollector(
                RaftView(
                    status=self.runtime.status,
                    is_active=lambda: self.active.is_active,
                    image=lambda: self.state.image,
                    log_size_bytes=lambda: storage.log.size_bytes,
                    snapshot_saved_at=lambda: storage.snapshot_saved_at,
                )
            )
        )
        self.sessions = BrokerSessionMonitor(
            self.active, self.cluster_id, config.broker_session_timeout_ms
        )
        self.rebalancer = LeaderRebalancer(
            self.active,
            enabled=config.auto_leader_rebalance_enable,
            interval_ms=config.leader_imbalance_check_interval_ms,
            imbalance_percentage=config.leader_imbalance_per_broker_percentage,
        )
        # Authorization (ACLs from the committed image); inter-node RPCs need CLUSTER_ACTION.
        # Ready once a leader is known: this voter's log then holds the committed ACLs.
        self.guard = guard_for(
            self.security,
            lambda: self.state.image.security,
            ready=lambda: self.runtime.leader_id is not None,
        )
        self.server = new_server(
            [
                *interceptors,
                authentication_interceptor(self.security, lambda: self.state.image.security),
                *inter_node_interceptors(self.guard),
            ]
        )
        raft_pb2_grpc.add_RaftServiceServicer_to_server(
            RaftServicer(self.cluster_id, self.node_id, self.runtime.deliver), self.server
        )
        controller_pb2_grpc.add_ControllerServiceServicer_to_server(
            ControllerServicer(
                cluster_id=self.cluster_id,
                runtime=self.runtime,
                active=self.active,
                state=self.state,
                sessions=self.sessions,
                addresses=self.addresses,
                tick_s=config.tick_ms / 1000,
                guard=self.guard,
            ),
            self.server,
        )
        security_pb2_grpc.add_UserServiceServicer_to_server(
            UserServicer(self.active, self.state), self.server
        )
        security_pb2_grpc.add_AclServiceServicer_to_server(
            AclServicer(
                active=self.active, state=self.state, enabled=self.security.authorizer_enable
            ),
            self.server,
        )
        security_pb2_grpc.add_QuotaServiceServicer_to_server(
            QuotaServicer(self.active), self.server
        )
        add_fault_service(self.server, FAULTS)
        # Ready once this voter knows the quorum's leader: it then takes part in a working
        # quorum, and the controller RPCs it serves reach (or are forwarded to) the leader.
        self.health = NodeHealth(
            controller_pb2.DESCRIPTOR.services_by_name["ControllerService"].full_name,
            lambda: self.runtime.leader_id is not None,
        )
        self.health.add_to_server(self.server)
        add_listeners(self.server, self.listeners)

    async def start(self) -> None:
        await self.health.start()
        await self.server.start()
        await self.runtime.start()
        self.sessions.start()
        self.rebalancer.start()
        log.info(
            "controller_started",
            node_id=self.node_id,
            listen=self.listen,
            client_listen=self.config.client_listen or None,
            cluster_id=self.cluster_id,
            voters=self.config.voters,
        )

    async def shutdown(self) -> None:
        log.info("controller_stopping", node_id=self.node_id)
        await self.health.stop()
        if self.runtime.status().role is Role.LEADER and len(self.addresses) > 1:
            with suppress(Exception):
                self.runtime.transfer_leadership(None)
                deadline = asyncio.get_running_loop().time() + SHUTDOWN_TRANSFER_WAIT_S
                while asyncio.get_running_loop().time() < deadline:
                    status = self.runtime.status()
                    if status.leader_id not in (None, self.node_id):
                        log.info("leadership_handed_over", new_leader=status.leader_id)
                        break
                    await asyncio.sleep(self.config.tick_ms / 1000)
        await self.rebalancer.stop()
        await self.sessions.stop()
        await self.server.stop(grace=0.5)
        await self.runtime.stop()
        log.info("controller_stopped", node_id=self.node_id)
