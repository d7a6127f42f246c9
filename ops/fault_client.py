"""Talks to one node's FaultService: inject, list and clear faults (see raftka.common.faults)."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

from raftka.common.fault_service import rule_from_pb, rule_to_pb
from raftka.common.faults import Action, Direction, FaultRule
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.status import error_from_rpc
from raftka.common.security.tls import ChannelSecurity
from raftka.v1 import faults_pb2 as pb
from raftka.v1.faults_pb2_grpc import FaultServiceStub

ISOLATE = FaultRule(Action.DROP)
"""Drop everything on every path, to and from every peer."""


class FaultClient:
    def __init__(
        self, address: str, timeout_s: float = 5.0, *, security: ChannelSecurity | None = None
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = open_channel(address, security=security)
        self._stub = FaultServiceStub(self._channel)

    async def __aenter__(self) -> FaultClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def inject(
        self, rules: Iterable[FaultRule] = (), *, fsync_delay_ms: int | None = None
    ) -> list[FaultRule]:
        """Add rules (and set the fsync delay, if given); return every rule now in force."""
        request = pb.InjectFaultsRequest(rules=[rule_to_pb(r) for r in rules])
        if fsync_delay_ms is not None:
            request.fsync_delay_ms = fsync_delay_ms
        return _rules(await self._call("InjectFaults", request))

    async def isolate(self, direction: Direction = Direction.BOTH) -> list[FaultRule]:
        return await self.inject([FaultRule(Action.DROP, direction=direction)])

    async def clear(self) -> None:
        await self._call("ClearFaults", pb.ClearFaultsRequest())

    async def describe(self) -> pb.FaultState:
        return await self._call("DescribeFaults", pb.DescribeFaultsRequest())

    async def _call(self, method: str, request: object) -> pb.FaultState:
        try:
            state: pb.FaultState = await getattr(self._stub, method)(
                request, timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, self.address) from None
        return state


def _rules(state: pb.FaultState) -> list[FaultRule]:
    return [rule_from_pb(r) for r in state.rules]
