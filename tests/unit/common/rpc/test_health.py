"""NodeHealth: the standard grpc.health.v1 service follows the role's readiness, starts
NOT_SERVING and ends NOT_SERVING, for the overall status and the role's own service name."""

from __future__ import annotations

import asyncio

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftka.common.rpc.channels import new_server, open_channel
from raftka.common.rpc.health import NOT_SERVING, SERVING, NodeHealth
from tests.conditions import eventually

SERVICE = "raftka.v1.BrokerService"


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return int(response.status)


async def _scenario() -> list[tuple[str, int, int]]:
    """Returns (step, overall status, role status) after each step."""
    ready = False
    health = NodeHealth(SERVICE, lambda: ready, poll_interval_s=0.01)
    server = new_server()
    health.add_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await health.start()
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    seen: list[tuple[str, int, int]] = []

    async def record(step: str, want: int) -> None:
        async def probe() -> bool | None:
            return True if await _status(stub, "") == want else None

        await eventually(probe, timeout_s=10, what=f"health {step}")
        seen.append((step, await _status(stub, ""), await _status(stub, SERVICE)))

    try:
        await record("starting", NOT_SERVING)
        ready = True
        await record("ready", SERVING)
        ready = False  # e.g. a broker fenced again
        await record("fenced", NOT_SERVING)
        ready = True
        await record("ready again", SERVING)
        await health.stop()
        await record("stopping", NOT_SERVING)
        try:
            await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
            seen.append(("unknown service", -1, -1))
        except grpc.aio.AioRpcError as e:
            seen.append(("unknown service", e.code().value[0], e.code().value[0]))
    finally:
        await channel.close()
        await server.stop(None)
    return seen


def test_health_follows_readiness_and_ends_not_serving() -> None:
    nf = grpc.StatusCode.NOT_FOUND.value[0]
    assert asyncio.run(_scenario()) == [
        ("starting", NOT_SERVING, NOT_SERVING),
        ("ready", SERVING, SERVING),
        ("fenced", NOT_SERVING, NOT_SERVING),
        ("ready again", SERVING, SERVING),
        ("stopping", NOT_SERVING, NOT_SERVING),
        ("unknown service", nf, nf),
    ]


async def _raising_check() -> bool:
    def broken() -> bool:
        raise RuntimeError("lifecycle not built yet")

    health = NodeHealth(SERVICE, broken, poll_interval_s=0.01)
    await health.start()
    await asyncio.sleep(0)  # let the poller run once (no waiting on time: one loop turn)
    alive = health._task is not None and not health._task.done()
    await health.stop()
    return alive and not health.serving


def test_a_failing_check_reports_not_serving_and_keeps_polling() -> None:
    assert asyncio.run(_raising_check())
