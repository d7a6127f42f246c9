"""The FaultService RPCs (served by every node) and the rule <-> protobuf mapping."""

from __future__ import annotations

from typing import Any

import grpc

from raftka.common.errors import InvalidRequestError
from raftka.common.faults import Action, Direction, FaultInjector, FaultPath, FaultRule
from raftka.common.rpc.status import rpc_errors
from raftka.v1 import faults_pb2 as pb
from raftka.v1.faults_pb2_grpc import FaultServiceServicer, add_FaultServiceServicer_to_server

_PATH_TO_PB = {
    FaultPath.RAFT: pb.FAULT_PATH_RAFT,
    FaultPath.REPLICATION: pb.FAULT_PATH_REPLICATION,
    FaultPath.HEARTBEAT: pb.FAULT_PATH_HEARTBEAT,
    FaultPath.MARKERS: pb.FAULT_PATH_MARKERS,
}
_PATH_FROM_PB = {v: k for k, v in _PATH_TO_PB.items()}
_DIRECTION_TO_PB = {
    Direction.BOTH: pb.FAULT_DIRECTION_BOTH,
    Direction.OUTBOUND: pb.FAULT_DIRECTION_OUTBOUND,
    Direction.INBOUND: pb.FAULT_DIRECTION_INBOUND,
}
_DIRECTION_FROM_PB = {v: k for k, v in _DIRECTION_TO_PB.items()}
_ACTION_TO_PB = {Action.DROP: pb.FAULT_ACTION_DROP, Action.DELAY: pb.FAULT_ACTION_DELAY}
_ACTION_FROM_PB = {v: k for k, v in _ACTION_TO_PB.items()}


def rule_to_pb(rule: FaultRule) -> pb.FaultRule:
    return pb.FaultRule(
        action=_ACTION_TO_PB[rule.action],
        paths=[_PATH_TO_PB[p] for p in sorted(rule.paths, key=lambda p: p.value)],
        peers=sorted(rule.peers),
        direction=_DIRECTION_TO_PB[rule.direction],
        delay_ms=rule.delay_ms,
        probability=rule.probability,
    )


def rule_from_pb(raw: pb.FaultRule) -> FaultRule:
    """Validate a rule from the wire; bad values raise InvalidRequestError naming the field."""
    if raw.action not in _ACTION_FROM_PB:
        raise InvalidRequestError(f"rule.action: unknown value {raw.action}")
    if raw.direction not in _DIRECTION_FROM_PB:
        raise InvalidRequestError(f"rule.direction: unknown value {raw.direction}")
    paths = set()
    for p in raw.paths:
        if p not in _PATH_FROM_PB:
            raise InvalidRequestError(
                f"rule.paths: {p} is not a path (use RAFT, REPLICATION, HEARTBEAT or MARKERS)"
            )
        paths.add(_PATH_FROM_PB[p])
    if any(peer < 0 for peer in raw.peers):
        raise InvalidRequestError(f"rule.peers: node ids are >= 0, got {list(raw.peers)}")
    return FaultRule(
        action=_ACTION_FROM_PB[raw.action],
        paths=frozenset(paths),
        peers=frozenset(raw.peers),
        direction=_DIRECTION_FROM_PB[raw.direction],
        delay_ms=raw.delay_ms,
        probability=raw.probability or 1.0,
    )


class FaultServicer(FaultServiceServicer):
    def __init__(self, injector: FaultInjector) -> None:
        self._faults = injector

    def _state(self) -> pb.FaultState:
        f = self._faults
        return pb.FaultState(
            node_id=f.node_id,
            enabled=f.enabled,
            rules=[rule_to_pb(r) for r in f.rules],
            fsync_delay_ms=f.fsync_delay_ms,
        )

    @rpc_errors
    async def InjectFaults(
        self, request: pb.InjectFaultsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FaultState:
        self._faults.check_enabled()
        rules = [rule_from_pb(r) for r in request.rules]
        delay = request.fsync_delay_ms if request.HasField("fsync_delay_ms") else None
        self._faults.add(rules, fsync_delay_ms=delay)
        return self._state()

    @rpc_errors
    async def ClearFaults(
        self, request: pb.ClearFaultsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FaultState:
        self._faults.check_enabled()
        self._faults.clear()
        return self._state()

    @rpc_errors
    async def DescribeFaults(
        self, request: pb.DescribeFaultsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.FaultState:
        return self._state()


def add_fault_service(server: grpc.aio.Server, injector: FaultInjector) -> None:
    add_FaultServiceServicer_to_server(FaultServicer(injector), server)
