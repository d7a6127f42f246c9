from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_fsync: let this storage test call the real fsync")


@pytest.fixture(autouse=True)
def no_fsync(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync becomes a no-op: these tests check what the log does with bytes, not the disk,
    and must not slow down when other processes load the disk. Tests marked ``real_fsync``
    keep the real calls."""
    if request.node.get_closest_marker("real_fsync") is not None:
        return
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
