"""The controller's probe of a reported broker: refused when nothing listens on its port,
answered by a live health service, no answer from a port that accepts but never answers."""

from __future__ import annotations

import asyncio
import socket

from raftka.common.rpc.channels import new_server
from raftka.common.rpc.health import NodeHealth
from raftka.controller.broker_probe import probe_health
from raftka.controller.control.liveness import ProbeOutcome


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nothing_listening_is_refused() -> None:
    outcome = asyncio.run(probe_health(f"127.0.0.1:{_closed_port()}", 2.0))
    assert outcome is ProbeOutcome.REFUSED


def test_a_live_server_answers_even_when_not_serving() -> None:
    async def main() -> ProbeOutcome:
        server = new_server()
        health = NodeHealth("raftka.v1.BrokerService", lambda: False)
        health.add_to_server(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await health.start()
        try:
            return await probe_health(f"127.0.0.1:{port}", 2.0)
        finally:
            await health.stop()
            await server.stop(None)

    assert asyncio.run(main()) is ProbeOutcome.ANSWERED


def test_a_port_that_accepts_but_never_answers_gets_no_answer() -> None:
    """What a paused (SIGSTOP) process looks like: the kernel completes the connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        outcome = asyncio.run(probe_health(f"127.0.0.1:{port}", 0.3))
    assert outcome is ProbeOutcome.NO_ANSWER
