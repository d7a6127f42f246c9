"""The active controller's probe of a broker it was told is unreachable: a TCP connect to its
port (refused at once by the kernel when its process is gone, whatever the load on this
machine), then one gRPC health check with a short deadline, on a fresh channel (a cached one
may sit in reconnect backoff).

Any answer, even NOT_SERVING or an authorization refusal, means the broker's process is alive
and its event loop runs; only a refused connection or no answer by the deadline fails the
probe, and the two are told apart (control/liveness.py treats them differently)."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from raftka.common.rpc.channels import open_channel
from raftka.controller.control.liveness import ProbeOutcome

PROBE_TIMEOUT_S = 0.5
"""How long a broker has to answer a probe. A loaded broker answers a health check in well
under this (it is one small unary call on its event loop); a paused or hung one never does."""


async def probe_health(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> ProbeOutcome:
    """Whether the node at ``address`` (``host:port``) answers a health check within
    ``timeout_s``."""
    started = time.monotonic()
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
        )
    except TimeoutError:
        return ProbeOutcome.NO_ANSWER
    except OSError:
        return ProbeOutcome.REFUSED
    writer.close()
    remaining = max(0.05, timeout_s - (time.monotonic() - started))
    async with open_channel(address) as channel:
        try:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=remaining
            )
        except grpc.aio.AioRpcError as e:
            if e.code() is grpc.StatusCode.UNAVAILABLE:
                return ProbeOutcome.REFUSED
            if e.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeOutcome.NO_ANSWER
    return ProbeOutcome.ANSWERED
