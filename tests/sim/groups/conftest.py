"""Seeds for the group coordinator simulation: 20 and the regression seeds by default,
``--sim-seed S`` replays one."""

from __future__ import annotations

import pytest

DEFAULT_SEEDS = 20
#: Seeds that once found a bug (173: a static member's partial assignment; 224, 401: a report
#: that left before a push released the pushed partitions), always run.
REGRESSION_SEEDS = (173, 224, 401)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "group_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("--sim-seed")
        seeds = [one] if one is not None else [*range(DEFAULT_SEEDS), *REGRESSION_SEEDS]
        metafunc.parametrize("group_seed", seeds, ids=[f"seed{s}" for s in seeds])
