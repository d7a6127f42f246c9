"""The metrics interceptor on a real in-process gRPC server (generic handlers, raw bytes)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import structlog
from prometheus_client import CollectorRegistry

from raftka.common.errors import UnknownTopicOrPartitionError
from raftka.common.metrics.rpc import RpcMetrics
from raftka.common.rpc.channels import new_server
from raftka.common.rpc.status import status_for, trailing_metadata_for


async def _ok(request: bytes, context: Any) -> bytes:
    return str(structlog.contextvars.get_contextvars()["request_id"]).encode()


async def _refused(request: bytes, context: Any) -> bytes:
    error = UnknownTopicOrPartitionError("no such topic")
    context.set_trailing_metadata(trailing_metadata_for(error))
    await context.abort(status_for(error), error.message)
    raise AssertionError("abort returns nothing")


async def _crashes(request: bytes, context: Any) -> bytes:
    raise RuntimeError("bug")


async def _stream(request: bytes, context: Any) -> Any:
    for i in range(3):
        yield bytes([i])


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "test.v1.Svc",
        {
            "Ok": grpc.unary_unary_rpc_method_handler(_ok),
            "Refused": grpc.unary_unary_rpc_method_handler(_refused),
            "Crashes": grpc.unary_unary_rpc_method_handler(_crashes),
            "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        },
    )


def test_counts_times_and_classifies_calls_and_binds_a_request_id() -> None:
    registry = CollectorRegistry()
    metrics = RpcMetrics(registry)

    async def main() -> None:
        server = new_server([metrics.interceptor()])
        server.add_generic_rpc_handlers((_handlers(),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                ok = channel.unary_unary("/test.v1.Svc/Ok")
                ids = {await ok(b"") for _ in range(3)}
                assert len(ids) == 3 and all(len(i) == 16 for i in ids), ids
                for method, code in (("Refused", "NOT_FOUND"), ("Crashes", "UNKNOWN")):
                    try:
                        await channel.unary_unary(f"/test.v1.Svc/{method}")(b"")
                    except grpc.aio.AioRpcError as e:
                        assert e.code().name == code
                    else:
                        raise AssertionError(f"{method} succeeded")
                items = [x async for x in channel.unary_stream("/test.v1.Svc/Stream")(b"")]
                assert items == [b"\x00", b"\x01", b"\x02"]
        finally:
            await server.stop(None)

    asyncio.run(main())

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    svc = {"service": "Svc"}
    assert sample("raftka_rpc_requests_total", **svc, method="Ok") == 3
    assert sample("raftka_rpc_request_duration_seconds_count", **svc, method="Ok") == 3
    assert sample("raftka_rpc_requests_total", **svc, method="Stream") == 1
    assert sample("raftka_rpc_errors_total", **svc, method="Ok", code="OK", error="") is None
    assert (
        sample(
            "raftka_rpc_errors_total",
            **svc,
            method="Refused",
            code="NOT_FOUND",
            error="UNKNOWN_TOPIC_OR_PARTITION",
        )
        == 1
    )
    assert sample("raftka_rpc_errors_total", **svc, method="Crashes", code="UNKNOWN", error="") == 1
