"""The broker logs each new (client id, address) once, and remembers a bounded number."""

from __future__ import annotations

from typing import Any

from structlog.testing import capture_logs

from raftka.broker.clients import ClientLog
from raftka.common.rpc.channels import CLIENT_ID_KEY


class _Context:
    def __init__(self, peer: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self._peer = peer
        self._metadata = metadata

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def _ctx(peer: str, client_id: str | None = None, user_agent: str = "") -> Any:
    metadata: list[tuple[str, str]] = []
    if client_id is not None:
        metadata.append((CLIENT_ID_KEY, client_id))
    if user_agent:
        metadata.append(("user-agent", user_agent))
    return _Context(peer, tuple(metadata))


def test_each_new_client_is_logged_once_with_its_id() -> None:
    clients = ClientLog()
    with capture_logs() as logs:
        assert clients.saw(_ctx("ipv4:1.2.3.4:5", "billing"), "Produce") == "billing"
        assert clients.saw(_ctx("ipv4:1.2.3.4:5", "billing"), "Produce") == "billing"
        clients.saw(_ctx("ipv4:1.2.3.4:6", user_agent="raftka-client/web%20app grpc-c/1"), "Fetch")
        clients.saw(_ctx("ipv4:1.2.3.4:7"), "Metadata")
    seen = [
        (e["client_id"], e["peer"], e["first_call"]) for e in logs if e["event"] == "client_seen"
    ]
    assert seen == [
        ("billing", "ipv4:1.2.3.4:5", "Produce"),
        ("web app", "ipv4:1.2.3.4:6", "Fetch"),
        (None, "ipv4:1.2.3.4:7", "Metadata"),
    ]


def test_memory_is_bounded_and_the_oldest_is_forgotten_first() -> None:
    clients = ClientLog(capacity=2)
    for port in (1, 2, 1, 3):  # 1 is used again before 3 arrives: 2 is the oldest
        clients.saw(_ctx(f"p:{port}", "c"), "Fetch")
    assert len(clients) == 2
    with capture_logs() as logs:
        clients.saw(_ctx("p:1", "c"), "Fetch")  # remembered
        clients.saw(_ctx("p:2", "c"), "Fetch")  # forgotten: logged again
    assert [e["peer"] for e in logs if e["event"] == "client_seen"] == ["p:2"]
