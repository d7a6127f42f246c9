"""FilePool: open descriptors bounded by an LRU, pinned files never closed under their user,
a reopened file checked to be the same file, and segments reading and writing through a pool
of one descriptor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from raftka.common.storage.file_pool import SEGMENT_FILES, FilePool, PooledFile
from raftka.common.storage.log import SegmentedLog
from tests.unit.common.storage.support import batch


def make(pool: FilePool, path: Path, data: bytes = b"x") -> PooledFile:
    path.write_bytes(data)
    return pool.adopt(path, os.open(path, os.O_RDWR))


def test_the_least_recently_used_idle_file_is_closed_and_reopened_on_use(tmp_path: Path) -> None:
    pool = FilePool(max_open=2)
    a, b, c = (make(pool, tmp_path / n, n.encode()) for n in "abc")
    assert (a.is_open, b.is_open, c.is_open) == (False, True, True)
    assert pool.open_count == 2 and pool.closes == 1
    with a.use() as fd:  # reopened; b is now the least recently used
        assert os.pread(fd, 1, 0) == b"a"
    assert (a.is_open, b.is_open, c.is_open) == (True, False, True)
    assert pool.opens == 1 and pool.open_count == 2


def test_a_file_in_use_is_never_closed_under_its_user(tmp_path: Path) -> None:
    pool = FilePool(max_open=1)
    a = make(pool, tmp_path / "a", b"a")
    with a.use() as fd:
        b = make(pool, tmp_path / "b", b"b")  # over the bound, but a is pinned
        assert a.is_open and pool.open_count == 2
        assert os.pread(fd, 1, 0) == b"a"
    assert (a.is_open, b.is_open) == (False, True)  # released: back within the bound
    a.close()
    with pytest.raises(OSError, match="closed"), a.use():
        pass


def test_a_path_that_names_another_file_now_is_refused(tmp_path: Path) -> None:
    pool = FilePool(max_open=1)
    a = make(pool, tmp_path / "a", b"old")
    make(pool, tmp_path / "b")  # closes a
    (tmp_path / "a.new").write_bytes(b"new")
    os.replace(tmp_path / "a.new", tmp_path / "a")  # e.g. a cleaned segment swapped in
    with pytest.raises(FileNotFoundError, match="no longer the file"), a.use():
        pass
    os.unlink(tmp_path / "a")
    with pytest.raises(FileNotFoundError), a.use():
        pass


def test_a_renamed_file_is_reopened_at_its_new_path(tmp_path: Path) -> None:
    pool = FilePool(max_open=1)
    a = make(pool, tmp_path / "a", b"a")
    os.rename(tmp_path / "a", tmp_path / "a.deleted")
    a.path = tmp_path / "a.deleted"
    make(pool, tmp_path / "b")
    with a.use() as fd:
        assert os.pread(fd, 1, 0) == b"a"


def test_logs_work_through_a_pool_of_one_descriptor(tmp_path: Path) -> None:
    before = SEGMENT_FILES.max_open
    SEGMENT_FILES.set_max_open(1)
    try:
        logs = [SegmentedLog.open(tmp_path / f"p{i}") for i in range(3)]
        for round_ in range(3):
            for i, log in enumerate(logs):
                log.append(batch(2, tag=10 * i + round_))
        assert SEGMENT_FILES.open_count <= 1
        for log in logs:
            log.flush()
            assert log.log_end_offset == 6
            assert len(log.read(0, 1 << 20).records) > 0
            log.close()
        reopened = SegmentedLog.open(tmp_path / "p1")
        assert reopened.log_end_offset == 6
        reopened.close()
    finally:
        SEGMENT_FILES.set_max_open(before)
