"""Finding the controllers from the brokers: a client that knows only broker addresses asks
one of them (Metadata with ``brokers_only``) where the controller quorum listens."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from raftka.client.connections import BrokerConnections
from raftka.common.errors import RaftkaError
from raftka.common.rpc.status import error_from_rpc
from raftka.common.security.tls import ChannelSecurity
from raftka.v1 import broker_pb2 as pb


async def controllers_from_brokers(
    bootstrap_servers: Sequence[str],
    *,
    timeout_s: float = 5.0,
    security: ChannelSecurity | None = None,
) -> list[str]:
    """The controllers' addresses as the first broker that answers knows them."""
    if not bootstrap_servers:
        raise RaftkaError("no broker address to ask where the controllers are")
    connections = BrokerConnections(security=security)
    problems: list[str] = []
    try:
        for address in bootstrap_servers:
            try:
                response = await connections.stub(address).Metadata(
                    pb.MetadataRequest(brokers_only=True), timeout=timeout_s
                )
            except grpc.aio.AioRpcError as e:
                problems.append(f"{address}: {error_from_rpc(e, address).message}")
                continue
            if response.controller_addresses:
                return list(response.controller_addresses)
            problems.append(f"{address}: knows no controller address")
    finally:
        await connections.close()
    raise RaftkaError(
        "no broker said where the controllers are (" + "; ".join(problems) + "); pass the "
        "controllers' addresses instead"
    )
