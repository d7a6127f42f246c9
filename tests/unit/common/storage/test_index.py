from __future__ import annotations

from pathlib import Path

import pytest

from raftka.common.storage.index import IndexCorruptError, OffsetIndex, TimeIndex


def test_offset_index_lookup_truncate_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000100.index"
    index = OffsetIndex(path, 100)
    assert index.lookup(150) == (100, 0)
    for offset, position in [(110, 4100), (125, 8300), (140, 12400)]:
        index.append(offset, position)
    assert index.lookup(100) == (100, 0)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 4100)
    assert index.lookup(139) == (125, 8300)
    assert index.lookup(10**9) == (140, 12400)
    with pytest.raises(ValueError, match="not above"):
        index.append(140, 20000)
    index.flush(fsync=True)
    assert path.stat().st_size == 24
    assert path.read_bytes()[:8] == (10).to_bytes(4, "big") + (4100).to_bytes(4, "big")

    index.truncate_to(125)
    assert len(index) == 1
    index.flush(fsync=False)
    assert path.stat().st_size == 8

    reloaded = OffsetIndex(path, 100)
    reloaded.load(log_size=5000, end_offset=None)
    assert reloaded.lookup(200) == (110, 4100)


def test_offset_index_sanity_checks(tmp_path: Path) -> None:
    path = tmp_path / "x.index"
    with pytest.raises(IndexCorruptError, match="missing"):
        OffsetIndex(path, 0).load(log_size=100, end_offset=None)
    path.write_bytes(b"\x00" * 7)
    with pytest.raises(IndexCorruptError, match="multiple of 8"):
        OffsetIndex(path, 0).load(log_size=100, end_offset=None)
    path.write_bytes(bytes.fromhex("00000005 00000010 00000004 00000020"))
    with pytest.raises(IndexCorruptError, match="not increasing"):
        OffsetIndex(path, 0).load(log_size=100, end_offset=None)
    path.write_bytes(bytes.fromhex("00000005 00000100"))
    with pytest.raises(IndexCorruptError, match="past the log end"):
        OffsetIndex(path, 0).load(log_size=100, end_offset=None)
    with pytest.raises(IndexCorruptError, match="beyond the segment end"):
        OffsetIndex(path, 0).load(log_size=1000, end_offset=5)


def test_time_index_is_monotonic(tmp_path: Path) -> None:
    path = tmp_path / "00000000000000000010.timeindex"
    index = TimeIndex(path, 10)
    assert index.lookup(5) is None
    index.maybe_append(-1, 10)  # no timestamp: ignored
    index.maybe_append(1000, 10)
    index.maybe_append(900, 12)  # not above the last: ignored
    index.maybe_append(1000, 13)
    index.maybe_append(2000, 20)
    assert len(index) == 2
    assert index.lookup(999) is None
    assert index.lookup(1500) == (1000, 10)
    assert index.lookup(2000) == (2000, 20)
    index.flush(fsync=False)
    assert path.read_bytes()[12:] == (2000).to_bytes(8, "big") + (10).to_bytes(4, "big")
    reloaded = TimeIndex(path, 10)
    reloaded.load(end_offset=None)
    assert reloaded.last_entry() == (2000, 20)
    reloaded.truncate_to(20)
    assert reloaded.last_entry() == (1000, 10)
    path.write_bytes(bytes(24))
    with pytest.raises(IndexCorruptError, match="not increasing"):
        TimeIndex(path, 10).load(end_offset=None)
