"""The completed transactions held until the high watermark passes their marker."""

from __future__ import annotations

import pytest

from raftka.broker.producers.unreplicated import HeldTxn, UnreplicatedTxns


def first(held: UnreplicatedTxns) -> int | None:
    """The first held offset (read through a call: no type narrowing between reads)."""
    return held.first_offset


def test_held_until_the_high_watermark_passes_the_marker() -> None:
    held = UnreplicatedTxns(high_watermark=2)
    held.completed(0, 4)
    held.completed(3, 5)
    assert first(held) == 0
    assert not held.on_high_watermark(4)
    assert held.held() == [HeldTxn(0, 4), HeldTxn(3, 5)]
    assert held.on_high_watermark(5)
    assert (first(held), held.held()) == (3, [HeldTxn(3, 5)])
    assert held.on_high_watermark(100)
    assert (first(held), len(held)) == (None, 0)


def test_the_first_offset_is_the_lowest_not_the_oldest_markers() -> None:
    held = UnreplicatedTxns()
    held.completed(5, 6)  # a short transaction completes first
    held.completed(1, 7)  # then a long one that began earlier
    assert first(held) == 1
    held.on_high_watermark(7)
    assert first(held) == 1
    held.on_high_watermark(8)
    assert first(held) is None


def test_a_marker_below_the_known_high_watermark_is_not_held() -> None:
    held = UnreplicatedTxns(high_watermark=10)
    held.completed(2, 9)
    assert first(held) is None
    held.completed(2, 10)
    assert held.held() == [HeldTxn(2, 10)]


def test_markers_must_come_in_log_order() -> None:
    held = UnreplicatedTxns()
    held.completed(0, 5)
    with pytest.raises(ValueError, match="log order"):
        held.completed(1, 5)


def test_a_lowered_high_watermark_holds_later_markers_again() -> None:
    held = UnreplicatedTxns(high_watermark=10)
    held.on_high_watermark(4)  # a truncation cut the log (and its markers) back to 4
    held.completed(1, 6)
    assert first(held) == 1
