"""free_port never hands out one port twice in a process, even when the kernel offers it
again (two nodes of one cluster on one port could not both start)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from raftka.ops import local_cluster


def test_a_port_the_kernel_offers_again_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([40001, 40001, 40001, 40002])

    class FakeSocket:
        def __init__(self, *_: Any) -> None:
            self.port = next(offered)

        def __enter__(self) -> FakeSocket:
            return self

        def __exit__(self, *_: Any) -> None:
            return None

        def bind(self, _address: tuple[str, int]) -> None:
            return None

        def getsockname(self) -> tuple[str, int]:
            return ("127.0.0.1", self.port)

    monkeypatch.setattr(local_cluster, "_PORTS_GIVEN", set())
    monkeypatch.setattr(socket, "socket", FakeSocket)
    assert local_cluster.free_port() == 40001
    assert local_cluster.free_port() == 40002


def test_real_ports_are_distinct() -> None:
    ports = {local_cluster.free_port() for _ in range(50)}
    assert len(ports) == 50
    with socket.socket() as s:  # and bindable
        s.bind(("127.0.0.1", ports.pop()))
