"""The group coordinator under random membership faults (see simulation.py).

Replay one seed: ``.venv/bin/pytest tests/sim/groups --sim-seed S``.
"""

from __future__ import annotations

import pytest

from .simulation import GroupSimulation


def _run(seed: int, **kwargs: int) -> None:
    try:
        summary = GroupSimulation(seed).run(**kwargs)
    except AssertionError as e:
        raise AssertionError(
            f"group simulation seed {seed} failed: {e}\n"
            f"replay: .venv/bin/pytest tests/sim/groups --sim-seed {seed}"
        ) from e
    assert summary.max_epoch > 0  # the run did something


def test_group_coordinator_random_faults(group_seed: int) -> None:
    _run(group_seed)


@pytest.mark.slow
def test_group_coordinator_random_faults_long() -> None:
    """Five times longer fault periods over 100 more seeds (``--long``)."""
    for seed in range(1_000, 1_100):
        _run(seed, fault_steps=1_500, settle_steps=300)
