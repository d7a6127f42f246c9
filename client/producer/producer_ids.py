"""Asks any broker for a producer id and epoch (InitProducerId), for idempotent producing."""

from __future__ import annotations

import grpc

from raftka.client.connections import BrokerConnections
from raftka.client.metadata_cache import MetadataCache
from raftka.common.errors import RaftkaError, RequestTimedOutError
from raftka.common.rpc.retry import Deadline
from raftka.common.rpc.status import error_from_rpc
from raftka.v1 import broker_pb2 as pb

INIT_TIMEOUT_S = 10.0


async def init_producer_id(
    metadata: MetadataCache, connections: BrokerConnections
) -> tuple[int, int]:
    if not metadata.brokers:
        await metadata.refresh()
    deadline = Deadline(INIT_TIMEOUT_S)
    errors: list[str] = []
    for address in list(dict.fromkeys([*metadata.brokers.values(), *metadata.bootstrap])):
        try:
            response: pb.InitProducerIdResponse = await connections.stub(address).InitProducerId(
                pb.InitProducerIdRequest(), timeout=max(0.5, deadline.remaining())
            )
            return int(response.producer_id), int(response.producer_epoch)
        except grpc.aio.AioRpcError as e:
            error = error_from_rpc(e, address)
            errors.append(f"{address}: {error.message}")
            if not error.retriable and not isinstance(error, RequestTimedOutError):
                raise error from None
        if deadline.expired():
            break
    raise RaftkaError(f"no broker gave a producer id ({'; '.join(errors)})")
