from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support import TxnHarness


@pytest.fixture
def h() -> Iterator[TxnHarness]:
    """Every test's shard must equal one replayed from the records it wrote."""
    harness = TxnHarness()
    yield harness
    harness.assert_replay_equal()
