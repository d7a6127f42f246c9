"""Seed parametrization for the randomized simulation (options live in tests/conftest.py)."""

from __future__ import annotations

import pytest


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("--sim-seed")
        count = metafunc.config.getoption("--sim-seeds")
        seeds = [one] if one is not None else list(range(count))
        metafunc.parametrize("sim_seed", seeds, ids=[f"seed{s}" for s in seeds])
