"""A gRPC server in the test's own process, for testing a client side against real calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from raftka.common.rpc.channels import open_channel

Body = Callable[[grpc.aio.Channel], Awaitable[None]]


def serve(register: Callable[[grpc.aio.Server], None], body: Body) -> None:
    """Start a server on a free port with what ``register`` adds, run ``body`` with a channel
    to it, stop the server (within 20 s in all)."""

    async def main() -> None:
        server = grpc.aio.server()
        register(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with open_channel(f"127.0.0.1:{port}") as channel:
                await body(channel)
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 20))


def unary_only(
    method: str,
    behaviour: Callable[..., Any],
    deserialize: Callable[[bytes], Any],
    serialize: Callable[[Any], bytes],
) -> Callable[[grpc.aio.Server], None]:
    """Registers just BrokerService/``method`` (unary): a broker older than a stream RPC."""

    def register(server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(
            behaviour, request_deserializer=deserialize, response_serializer=serialize
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("raftka.v1.BrokerService", {method: handler}),)
        )

    return register
