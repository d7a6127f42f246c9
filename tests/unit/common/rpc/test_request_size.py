"""Oversized listing requests are refused unparsed by every server (new_server), with
INVALID_REQUEST naming the limit; requests within it reach the handler as usual."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from raftka.common.limits import MAX_ITEMS_PER_REQUEST, MAX_LISTING_REQUEST_BYTES
from raftka.common.rpc.channels import new_server, open_channel
from raftka.common.rpc.status import ERROR_KEY
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import controller_pb2_grpc


async def _call(request: pb.DescribeTopicsRequest) -> tuple[list[int], grpc.aio.AioRpcError | None]:
    """DescribeTopics on a server from new_server(): the name counts its handler saw, and the
    error the call ended with (None if it succeeded)."""
    seen: list[int] = []

    async def describe(r: pb.DescribeTopicsRequest, _context: Any) -> pb.DescribeTopicsResponse:
        seen.append(len(r.names))
        return pb.DescribeTopicsResponse()

    server = new_server()
    handler = grpc.unary_unary_rpc_method_handler(
        describe,
        request_deserializer=pb.DescribeTopicsRequest.FromString,
        response_serializer=pb.DescribeTopicsResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "raftka.v1.ControllerService", {"DescribeTopics": handler}
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with open_channel(f"127.0.0.1:{port}") as channel:
            stub = controller_pb2_grpc.ControllerServiceStub(channel)
            try:
                await stub.DescribeTopics(request, timeout=30)
            except grpc.aio.AioRpcError as e:
                return seen, e
            return seen, None
    finally:
        await server.stop(None)


def test_the_longest_allowed_names_fit_the_byte_limit() -> None:
    longest = pb.DescribeTopicsRequest(names=["t" * 249] * MAX_ITEMS_PER_REQUEST)
    assert longest.ByteSize() <= MAX_LISTING_REQUEST_BYTES
    seen, error = asyncio.run(_call(longest))
    assert error is None and seen == [MAX_ITEMS_PER_REQUEST]


@pytest.mark.parametrize("names", [["t" * 249] * 20_000, [""] * 1_600_000])
def test_an_oversized_listing_is_refused_before_it_is_parsed(names: list[str]) -> None:
    request = pb.DescribeTopicsRequest(names=names)
    size = request.ByteSize()
    seen, error = asyncio.run(_call(request))
    assert seen == [], "the handler never sees it"
    assert error is not None and error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert dict(error.trailing_metadata() or ())[ERROR_KEY] == "INVALID_REQUEST"
    assert f"is {size} bytes; at most {MAX_LISTING_REQUEST_BYTES}" in (error.details() or "")
