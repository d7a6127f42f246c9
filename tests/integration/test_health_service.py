"""The grpc.health.v1 service that readiness probes ask (deploy/k8s), on real controller and
broker processes: a controller without a quorum is NOT_SERVING; once the quorum has a leader
every voter is SERVING; a broker is SERVING once registered and unfenced. The image's probe
(deploy/docker/ready.py) reads a node's config and agrees."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.health import NOT_SERVING, SERVING
from raftka.ops.local_cluster import LocalCluster
from tests.conditions import eventually, holds_for
from tests.integration.support.brokers import FAST_BROKER, stop_broker_cluster
from tests.integration.support.quorum import FAST_CONTROLLER

pytestmark = pytest.mark.integration

READY_PROBE = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "ready.py"


def _probe(config: Path) -> subprocess.CompletedProcess[str]:
    """Run the image's readiness probe against the node whose config is ``config``."""
    return subprocess.run(
        [sys.executable, str(READY_PROBE)],
        env={**os.environ, "RAFTKA_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def _status(address: str, service: str = "") -> int | None:
    """The node's health status, or None while it does not answer yet."""
    async with open_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        except grpc.aio.AioRpcError:  # not listening yet
            return None
        status: int = response.status
        return status


async def _wait_status(address: str, want: int, service: str = "") -> None:
    async def probe() -> bool | None:
        return True if await _status(address, service) == want else None

    await eventually(probe, timeout_s=30, what=f"{address} health {service!r} = {want}")


def test_readiness_follows_quorum_and_broker_registration(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path / "cluster",
        controllers=3,
        brokers=1,
        controller_settings=FAST_CONTROLLER,
        broker_settings=FAST_BROKER,
    )
    cluster.prepare()
    controllers = [cluster.nodes[i].address for i in (1, 2, 3)]
    broker = cluster.brokers[4].address

    async def main() -> None:
        # One voter of three can elect no leader: it answers, but is not ready.
        await _wait_status(controllers[0], NOT_SERVING)
        election_timeout_s = int(FAST_CONTROLLER["election_timeout_ms"]) / 1000

        async def still_not_serving() -> bool:
            return await _status(controllers[0]) == NOT_SERVING

        assert await holds_for(
            still_not_serving, duration_s=4 * election_timeout_s, what="lone voter not ready"
        )
        lone = _probe(cluster.nodes[1].config_path)
        assert lone.returncode == 1
        assert "controller at 127.0.0.1" in lone.stderr and "NOT_SERVING" in lone.stderr
        cluster.start(2)
        cluster.start(3)
        for address in controllers:
            await _wait_status(address, SERVING)
            await _wait_status(address, SERVING, "raftka.v1.ControllerService")
        cluster.start(4)
        await _wait_status(broker, SERVING)
        await _wait_status(broker, SERVING, "raftka.v1.BrokerService")
        for node in (*cluster.nodes.values(), cluster.brokers[4]):
            ready = _probe(node.config_path)
            assert ready.returncode == 0, ready.stderr

    cluster.start(1)
    try:
        asyncio.run(main())
    finally:
        stop_broker_cluster(cluster)
