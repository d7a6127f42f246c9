"""Randomized fault schedules: one seed = one replayable run (see harness/faults.py).

``--sim-seeds N`` sweeps seeds 0..N-1 (default 500); ``--sim-seed S`` replays seed S alone.
"""

from __future__ import annotations

import pytest

from .harness.faults import replay_command, run_random


def _run(seed: int, *, long: bool = False, **kwargs: int) -> None:
    try:
        run_random(seed, **kwargs)
    except Exception as e:
        replay = replay_command(seed) + (" --long" if long else "")
        raise AssertionError(
            f"simulation seed {seed} failed: {type(e).__name__}: {e}\nreplay: {replay}"
        ) from e


def test_random_faults(sim_seed: int) -> None:
    _run(sim_seed)


@pytest.mark.slow
def test_random_faults_long(request: pytest.FixtureRequest) -> None:
    """Ten times longer fault periods over a tenth of the seeds (``--long``)."""
    one = request.config.getoption("--sim-seed")
    seeds = (
        [one] if one is not None else range(max(1, request.config.getoption("--sim-seeds") // 10))
    )
    for seed in seeds:
        _run(seed, long=True, fault_ticks=1200, settle_ticks=400)
