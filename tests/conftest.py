"""Options shared by the whole suite."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="also run long fault runs (tests marked slow)",
    )
    parser.addoption(
        "--sim-seeds",
        type=int,
        default=500,
        help="how many seeds the randomized Raft simulation sweeps (CI runs the default)",
    )
    parser.addoption(
        "--sim-seed",
        type=int,
        default=None,
        help="replay exactly one simulation seed (printed by a failing run)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip_slow = pytest.mark.skip(reason="long fault run: pass --long to include it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)
