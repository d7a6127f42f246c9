"""Seeds for the transaction coordinator simulation: a few by default (the whole set runs in
well under 10 s), ``--sim-seed S`` replays one, ``--long`` adds the long runs."""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 6


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "txn_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("--sim-seed")
        seeds = [one] if one is not None else list(range(DEFAULT_SEEDS))
        metafunc.parametrize("txn_seed", seeds, ids=[f"seed{s}" for s in seeds])
