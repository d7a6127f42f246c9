"""The transaction coordinator under random faults (see simulation.py).

Replay one seed: ``.venv/bin/pytest tests/sim/transactions --sim-seed S``.
"""

from __future__ import annotations

import pytest

from .simulation import SimSummary, TxnSimulation


def _run(seed: int, steps: int = 600) -> SimSummary:
    try:
        return TxnSimulation(seed).run(steps=steps)
    except AssertionError as e:
        raise AssertionError(
            f"transaction simulation seed {seed} failed: {e}\n"
            f"replay: .venv/bin/pytest tests/sim/transactions --sim-seed {seed}"
        ) from e


def test_transaction_coordinator_random_faults(txn_seed: int) -> None:
    summary = _run(txn_seed)
    # The run did something: commits, aborts, failovers, and the producer id change of the id
    # that starts near the last epoch.
    assert summary.commits > 0 and summary.aborts > 0
    assert summary.failovers > 0 and summary.overflowed


@pytest.mark.slow
def test_transaction_coordinator_random_faults_long() -> None:
    """Five times longer runs over 100 more seeds (``--long``)."""
    summaries = [_run(seed, steps=3_000) for seed in range(1_000, 1_100)]
    assert all(s.overflowed for s in summaries)
    assert sum(s.fenced_calls for s in summaries) > 0
    assert sum(s.fenced_refusals for s in summaries) > 0
