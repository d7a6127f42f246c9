"""Seeds for the group coordinator simulation: 20 by default, ``--sim-seed S`` replays one."""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 20


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "group_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("--sim-seed")
        seeds = [one] if one is not None else list(range(DEFAULT_SEEDS))
        metafunc.parametrize("group_seed", seeds, ids=[f"seed{s}" for s in seeds])
