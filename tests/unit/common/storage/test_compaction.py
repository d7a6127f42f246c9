"""Compaction of a segmented log: what is kept, offsets, tombstones, producers, codecs."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.common.records import Compression, decode_batch
from raftka.common.records.compression import SUPPORTED_COMPRESSION
from raftka.common.storage import SegmentedLog
from raftka.common.storage.cleaner import clean_log
from raftka.common.storage.compaction import filter_batch
from tests.unit.common.storage.compaction_support import (
    NOW,
    keyed,
    latest,
    read_from,
    rules,
    small_log,
)


def fill(log: SegmentedLog, rounds: int, keys: int = 5) -> dict[bytes, tuple[int, bytes]]:
    """``rounds`` updates of ``keys`` keys, one record per batch; returns the latest."""
    expected: dict[bytes, tuple[int, bytes]] = {}
    for r in range(rounds):
        for k in range(keys):
            key, value = f"k{k}".encode(), f"v{r}-{k}".encode()
            info = log.append(keyed([(key, value)]))
            expected[key] = (info.base_offset, value)
    return expected


def clean_all(log: SegmentedLog, first_dirty: int = 0, **kwargs: object) -> int:
    """Cleans every non-active segment; returns the map's end."""
    result = clean_log(
        log,
        first_dirty=first_dirty,
        end_offset=log.segment_base_offsets[-1],
        rules=kwargs.pop("rules", rules()),  # type: ignore[arg-type]
    )
    assert result is not None and result.completed
    return result.map_end


def test_latest_value_per_key_is_kept_at_its_offset(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    expected = fill(log, rounds=6)
    end = log.log_end_offset
    size_before = log.size_bytes
    active_base = log.segment_base_offsets[-1]
    assert clean_all(log) == active_base
    records, _ = read_from(log, 0)
    # Cleaned segments hold one record per key at most; the active segment is untouched.
    cleaned = [r for r in records if r.offset < active_base]
    assert len({r.key for r in cleaned}) == len(cleaned)
    assert latest(records) == expected
    assert log.log_end_offset == end
    assert log.size_bytes < size_before
    assert log.segment_base_offsets[-1] == active_base


def test_a_compacted_log_read_from_every_offset_returns_what_follows(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log, rounds=6)
    before, _ = read_from(log, 0)
    clean_all(log)
    after, _ = read_from(log, 0)
    kept = {r.offset for r in after}
    assert kept < {r.offset for r in before}
    for offset in range(log.log_end_offset):
        records, _ = read_from(log, offset)
        assert [r.offset for r in records] == sorted(o for o in kept if o >= offset)
    # And after a reopen (indexes loaded from disk), the same.
    log.close()
    reopened = small_log(tmp_path)
    for offset in range(0, reopened.log_end_offset, 3):
        records, _ = read_from(reopened, offset)
        assert [r.offset for r in records] == sorted(o for o in kept if o >= offset)


def test_offsets_stay_contiguous_batch_to_batch(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log, rounds=6)
    clean_all(log)
    _, headers = read_from(log, 0)
    expected = 0
    for header in headers:
        assert header.base_offset == expected
        expected = header.next_offset
    assert expected == log.log_end_offset
    # Dropped runs became header-only fillers, fewer than the batches they replace.
    fillers = [h for h in headers if h.records_count == 0]
    assert fillers and all(h.producer_id == -1 for h in fillers)


def test_keyless_records_are_dropped(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    log.append(keyed([(None, b"no key"), (b"a", b"1"), (None, b"no key either")]))
    log.append(keyed([(b"b", b"2" * 600)]))  # rolls
    log.append(keyed([(b"c", b"3")]))  # rolls
    clean_all(log)
    records, _ = read_from(log, 0)
    assert [(r.offset, r.key) for r in records] == [(1, b"a"), (3, b"b"), (4, b"c")]


def test_tombstones_stay_for_delete_retention_then_go(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    log.append(keyed([(b"a", b"1"), (b"b", b"1")]))
    log.append(keyed([(b"a", None)]))  # tombstone at offset 2
    log.append(keyed([(b"x", b"x" * 600)]))  # rolls: offsets 0..2 are cleanable
    log.append(keyed([(b"y", b"y")]))
    clean_all(log, rules=rules(now_ms=NOW, delete_retention_ms=1000))
    records, headers = read_from(log, 0)
    assert [(r.offset, r.key, r.value) for r in records[:2]] == [(1, b"b", b"1"), (2, b"a", None)]
    tomb_batch = next(h for h in headers if h.base_offset == 2)
    assert tomb_batch.has_delete_horizon and tomb_batch.base_timestamp == NOW + 1000
    assert records[1].timestamp == 1_000_000  # record timestamps survive the rebase
    # Before the horizon another cleaning keeps it; at the horizon it goes.
    clean_all(log, first_dirty=0, rules=rules(now_ms=NOW + 999))
    assert (2, b"a", None) in [(r.offset, r.key, r.value) for r in read_from(log, 0)[0]]
    clean_all(log, first_dirty=0, rules=rules(now_ms=NOW + 1000))
    records, _ = read_from(log, 0)
    assert [r.key for r in records if r.offset < 3] == [b"b"]
    assert log.log_end_offset == 5


def test_unchanged_batches_are_copied_byte_for_byte(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    first = keyed([(b"a", b"1"), (b"b", b"2")])
    log.append(first)
    log.append(keyed([(b"z", b"z" * 600)]))
    log.append(keyed([(b"y", b"y")]))
    clean_all(log)
    stored = log.read(0, 1 << 20).records
    assert bytes(stored[: len(first)]) == bytes(first)


@pytest.mark.parametrize("codec", sorted(SUPPORTED_COMPRESSION - {Compression.NONE}))
def test_compressed_batches_are_recompressed_with_their_codec(
    tmp_path: Path, codec: Compression
) -> None:
    log = small_log(tmp_path)
    log.append(keyed([(b"a", b"old"), (b"b", b"keep"), (b"a", b"new")], compression=codec))
    log.append(keyed([(b"z", b"z" * 600)]))
    log.append(keyed([(b"y", b"y")]))
    clean_all(log)
    decoded = decode_batch(log.read(0, 1 << 20).records)  # CRC checked
    assert decoded.header.compression is codec
    assert decoded.header.last_offset_delta == 2
    assert [(r.offset, r.key, r.value) for r in decoded.records] == [
        (1, b"b", b"keep"),
        (2, b"a", b"new"),
    ]


def test_an_active_producers_last_batch_stays_as_an_empty_header(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    log.append(keyed([(b"a", b"1"), (b"b", b"1")], producer=(7, 3, 10)))  # offsets 0..1
    log.append(keyed([(b"a", b"2"), (b"b", b"2")], producer=(8, 0, 0)))  # offsets 2..3
    log.append(keyed([(b"a", b"3"), (b"b", b"3")]))  # offsets 4..5, supersede both
    log.append(keyed([(b"z", b"z" * 600)]))
    log.append(keyed([(b"y", b"y")]))
    # Producer 7's last batch is 0..1 (still in the state); producer 8 is gone.
    clean_all(log, rules=rules(retain=frozenset({(7, 1)})))
    _, headers = read_from(log, 0)
    first = headers[0]
    assert (first.base_offset, first.last_offset_delta, first.records_count) == (0, 1, 0)
    assert (first.producer_id, first.producer_epoch, first.base_sequence) == (7, 3, 10)
    second = headers[1]
    assert (second.base_offset, second.last_offset, second.producer_id) == (2, 3, -1)


def test_the_active_segment_and_offsets_past_the_end_are_never_cleaned(tmp_path: Path) -> None:
    log = small_log(tmp_path)
    fill(log, rounds=6)
    active = log.segment_base_offsets[-1]
    second = log.segment_base_offsets[2]
    result = clean_log(log, first_dirty=0, end_offset=second + 1, rules=rules())
    assert result is not None and result.map_end == second
    records, _ = read_from(log, second)
    assert len(records) == log.log_end_offset - second  # nothing from `second` on was touched
    assert clean_log(log, first_dirty=active, end_offset=active, rules=rules()) is None


def test_filter_drops_superseded_records_and_keeps_unmapped_keys() -> None:
    batch = keyed([(b"a", b"1"), (b"b", b"2")])
    filtered = filter_batch(batch, {b"a": 5}, rules())
    assert [r.key for r in decode_batch(filtered.data).records] == [b"b"]
    assert filter_batch(batch, {b"c": 9}, rules()).data == batch


def test_a_full_offset_map_cleans_up_to_its_segment_and_the_next_pass_goes_on(
    tmp_path: Path,
) -> None:
    log = small_log(tmp_path)
    for i in range(40):
        log.append(keyed([(f"key-{i}".encode(), b"v")]))  # every key once
    expected = {r.key: r.offset for r in read_from(log, 0)[0]}
    active = log.segment_base_offsets[-1]
    first = clean_log(log, first_dirty=0, end_offset=active, rules=rules(), max_keys=3)
    assert first is not None and first.completed
    assert first.map_end == log.segment_base_offsets[1] < active
    second = clean_log(log, first_dirty=first.map_end, end_offset=active, rules=rules())
    assert second is not None and second.map_end == active
    assert {r.key: r.offset for r in read_from(log, 0)[0]} == expected
