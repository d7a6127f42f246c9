"""LeaderEpochCache: Kafka's assign / endOffsetFor / truncation rules, its checkpoint file, and
the follower truncation rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.leader_epoch_cache import (
    LEADER_EPOCH_CHECKPOINT_FILE,
    UNDEFINED,
    EpochEndOffset,
    EpochEntry,
    LeaderEpochCache,
    TruncationTarget,
    follower_truncation_target,
    format_leader_epoch_checkpoint,
    read_leader_epoch_checkpoint,
)


def cache_of(*entries: tuple[int, int], path: Path | None = None) -> LeaderEpochCache:
    return LeaderEpochCache(path, [EpochEntry(e, s) for e, s in entries])


def pairs(cache: LeaderEpochCache) -> list[tuple[int, int]]:
    return [(e.epoch, e.start_offset) for e in cache.entries]


# ====================================================================== end_offset_for


def test_end_offset_for_every_branch() -> None:
    cache = cache_of((2, 10), (4, 20), (7, 35))
    leo = 50
    # The latest epoch ends at the log end offset.
    assert cache.end_offset_for(7, leo) == EpochEndOffset(7, 50)
    # A known earlier epoch ends where the next one starts.
    assert cache.end_offset_for(4, leo) == EpochEndOffset(4, 35)
    assert cache.end_offset_for(2, leo) == EpochEndOffset(2, 20)
    # An unknown epoch between known ones: the largest epoch below it, ending where the first
    # epoch above the *requested* one starts.
    assert cache.end_offset_for(3, leo) == EpochEndOffset(2, 20)
    assert cache.end_offset_for(5, leo) == EpochEndOffset(4, 35)
    assert cache.end_offset_for(6, leo) == EpochEndOffset(4, 35)
    # Below every epoch: the requested epoch, ending where the first known epoch starts.
    assert cache.end_offset_for(1, leo) == EpochEndOffset(1, 10)
    assert cache.end_offset_for(0, leo) == EpochEndOffset(0, 10)
    # UNDEFINED: no epoch requested, or newer than any known epoch.
    assert cache.end_offset_for(-1, leo) == UNDEFINED
    assert cache.end_offset_for(8, leo) == UNDEFINED
    assert EpochEndOffset(-1, -1) == UNDEFINED and UNDEFINED.undefined


def test_end_offset_for_empty_cache_is_undefined() -> None:
    cache = LeaderEpochCache()
    assert cache.end_offset_for(0, 10) == EpochEndOffset(-1, -1)
    assert cache.end_offset_for(5, 0) == EpochEndOffset(-1, -1)
    assert cache.latest_epoch == -1 and cache.latest_entry is None


def test_end_offset_for_single_entry() -> None:
    cache = cache_of((3, 0))
    assert cache.end_offset_for(3, 12) == EpochEndOffset(3, 12)
    assert cache.end_offset_for(2, 12) == EpochEndOffset(2, 0)
    assert cache.end_offset_for(4, 12) == UNDEFINED


def test_epoch_for_offset() -> None:
    cache = cache_of((2, 10), (4, 20))
    assert [cache.epoch_for_offset(o) for o in (0, 9, 10, 19, 20, 99)] == [-1, -1, 2, 2, 4, 4]


# ====================================================================== assign


def test_assign_appends_newer_epochs_and_ignores_repeats() -> None:
    cache = LeaderEpochCache()
    assert cache.assign(1, 0) is True
    assert cache.assign(1, 5) is False  # same epoch, later offset: nothing new
    assert cache.assign(1, 0) is False
    assert cache.assign(3, 8) is True
    assert pairs(cache) == [(1, 0), (3, 8)]
    assert cache.latest_epoch == 3


def test_assign_same_epoch_at_smaller_offset_moves_its_start() -> None:
    cache = cache_of((1, 0), (3, 8))
    assert cache.assign(3, 6) is True
    assert pairs(cache) == [(1, 0), (3, 6)]


def test_assign_newer_epoch_at_smaller_offset_drops_entries_at_or_after_it() -> None:
    cache = cache_of((1, 0), (3, 8), (4, 12))
    assert cache.assign(5, 8) is True
    assert pairs(cache) == [(1, 0), (5, 8)]


def test_assign_older_epoch_drops_newer_entries_as_kafka_does() -> None:
    cache = cache_of((1, 0), (3, 8), (4, 12))
    assert cache.assign(2, 20) is True
    assert pairs(cache) == [(1, 0), (2, 20)]


def test_assign_rejects_negative_values() -> None:
    cache = LeaderEpochCache()
    with pytest.raises(ValueError, match="invalid leader epoch entry"):
        cache.assign(-1, 0)
    with pytest.raises(ValueError, match="invalid leader epoch entry"):
        cache.assign(0, -3)
    assert len(cache) == 0


def test_entries_must_be_strictly_increasing() -> None:
    with pytest.raises(ValueError, match="does not follow"):
        cache_of((1, 0), (1, 5))
    with pytest.raises(ValueError, match="does not follow"):
        cache_of((1, 5), (2, 5))


# ====================================================================== truncation


def test_truncate_from_end_drops_entries_starting_at_or_after_the_offset() -> None:
    cache = cache_of((1, 0), (3, 8), (4, 12))
    assert cache.truncate_from_end(13) is False
    assert cache.truncate_from_end(12) is True
    assert pairs(cache) == [(1, 0), (3, 8)]
    assert cache.truncate_from_end(5) is True
    assert pairs(cache) == [(1, 0)]
    assert cache.truncate_from_end(0) is True
    assert pairs(cache) == []


def test_truncate_from_start_collapses_older_entries() -> None:
    cache = cache_of((1, 0), (3, 8), (4, 12))
    assert cache.truncate_from_start(10) is True
    assert pairs(cache) == [(3, 10), (4, 12)]
    # An entry starting exactly at the new log start stays as it is.
    assert cache.truncate_from_start(10) is False
    assert cache.truncate_from_start(5) is False
    assert pairs(cache) == [(3, 10), (4, 12)]
    assert cache.truncate_from_start(12) is True
    assert pairs(cache) == [(4, 12)]
    assert cache.truncate_from_start(30) is True
    assert pairs(cache) == [(4, 30)]


# ====================================================================== persistence


def test_checkpoint_file_is_kafkas_text_format(tmp_path: Path) -> None:
    path = tmp_path / LEADER_EPOCH_CHECKPOINT_FILE
    cache = LeaderEpochCache(path)
    cache.assign(0, 0)
    cache.assign(3, 120)
    assert path.read_text() == "0\n2\n0 0\n3 120\n"
    assert read_leader_epoch_checkpoint(path) == [(0, 0), (3, 120)]
    cache.truncate_from_end(100)
    assert path.read_text() == "0\n1\n0 0\n"
    cache.clear()
    assert path.read_text() == "0\n0\n"
    assert read_leader_epoch_checkpoint(path) == []


def test_mutations_with_flush_false_write_once_on_flush(tmp_path: Path) -> None:
    path = tmp_path / LEADER_EPOCH_CHECKPOINT_FILE
    cache = LeaderEpochCache(path)
    cache.assign(1, 0, flush=False)
    cache.assign(2, 4, flush=False)
    assert not path.exists()
    cache.flush()
    assert read_leader_epoch_checkpoint(path) == [(1, 0), (2, 4)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1\n1\n0 0\n",  # unknown version
        "0\n2\n0 0\n",  # count does not match
        "0\n1\n0\n",  # one field
        "0\n1\n0 x\n",
        "0\n2\n3 10\n2 20\n",  # epochs out of order
        "0\n2\n2 10\n3 10\n",  # start offsets not increasing
        "0\n1\n-1 0\n",
        "0\n1\n0 0",  # no final newline: a torn write
    ],
)
def test_unreadable_checkpoint_reads_as_missing(tmp_path: Path, text: str) -> None:
    path = tmp_path / LEADER_EPOCH_CHECKPOINT_FILE
    path.write_text(text)
    assert read_leader_epoch_checkpoint(path) is None


def test_missing_checkpoint_reads_as_missing(tmp_path: Path) -> None:
    assert read_leader_epoch_checkpoint(tmp_path / LEADER_EPOCH_CHECKPOINT_FILE) is None


def test_format_round_trips() -> None:
    entries = [EpochEntry(1, 0), EpochEntry(5, 77), EpochEntry(9, 1 << 40)]
    assert format_leader_epoch_checkpoint(entries).splitlines() == [
        "0",
        "3",
        "1 0",
        "5 77",
        f"9 {1 << 40}",
    ]


# ====================================================================== follower truncation


def target(
    diverging: tuple[int, int], *entries: tuple[int, int], leo: int, hw: int = 0
) -> TruncationTarget:
    return follower_truncation_target(
        cache_of(*entries),
        EpochEndOffset(*diverging),
        log_end_offset=leo,
        high_watermark=hw,
    )


def test_follower_target_known_epoch_is_min_of_leader_end_local_end_and_leo() -> None:
    # Leader end is the smallest.
    assert target((1, 10), (1, 0), (2, 15), leo=20) == (10, True)
    # The local end of the epoch is the smallest.
    assert target((1, 18), (1, 0), (2, 15), leo=20) == (15, True)
    # The log end is the smallest (the epoch is the latest locally: its end is the LEO).
    assert target((2, 30), (1, 0), (2, 15), leo=20) == (20, True)
    assert target((2, 17), (1, 0), (2, 15), leo=20) == (17, True)


def test_follower_target_unknown_epoch_goes_to_end_of_largest_smaller_and_asks_again() -> None:
    # The leader answers epoch 2, which this replica never saw: it truncates to the end of
    # its epoch 1 (where its epoch 3 starts) and fetches again.
    assert target((2, 12), (1, 0), (3, 10), leo=20) == (10, False)


def test_follower_target_without_epoch_or_local_answer() -> None:
    assert target((-1, 8), (1, 0), leo=20) == (8, True)  # the leader has no epochs
    assert target((-1, 30), (1, 0), leo=20) == (20, True)
    assert target((5, 12), leo=20) == (12, True)  # empty local cache
    assert target((9, 12), (1, 0), leo=20) == (12, True)  # epoch newer than any local one
    # No end offset from the leader: back to the high watermark.
    assert target((3, -1), (1, 0), leo=20, hw=7) == (7, True)
