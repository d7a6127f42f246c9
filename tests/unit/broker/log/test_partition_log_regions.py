"""Zero-copy reads (``zero_copy=True``): the batches come as a region of their segment file,
byte for byte what the buffered read returns, cut at the same bounds, and a damaged batch is
never put in a region: the read fails and records the damage as the buffered read does."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import DamagedLogError, FetchData
from tests.unit.broker.log.test_partition_log_damage import SEGMENT_BYTES, damaged, write
from tests.unit.broker.support import open_partition


def region_bytes(data: FetchData) -> bytes:
    assert data.region is not None and data.records == b""
    try:
        return data.region.read()
    finally:
        data.region.close()


@pytest.mark.parametrize(
    ("offset", "max_bytes", "max_offset"),
    [(0, 1, None), (0, 1 << 20, None), (3, 350, None), (5, 1 << 20, 8), (9, 1 << 20, 10)],
)
def test_a_region_holds_what_the_buffered_read_returns(
    tmp_path: Path, offset: int, max_bytes: int, max_offset: int | None
) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    bound = plog.log_end_offset if max_offset is None else max_offset
    buffered = plog.read(offset, max_bytes, max_offset=bound)
    mapped = plog.read(offset, max_bytes, max_offset=bound, zero_copy=True)
    assert mapped.size == len(buffered.records) > 0
    assert region_bytes(mapped) == buffered.records
    assert (mapped.log_start_offset, mapped.log_end_offset) == (
        buffered.log_start_offset,
        buffered.log_end_offset,
    )
    plog.close()


def test_a_batch_larger_than_max_bytes_is_not_read_unless_it_may_be(tmp_path: Path) -> None:
    plog: PartitionLog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog, 3)
    end = plog.log_end_offset
    empty = plog.read(0, 10, max_offset=end, min_one_batch=False, zero_copy=True)
    assert empty.region is None and empty.size == 0
    one = plog.read(0, 10, max_offset=end, min_one_batch=True, zero_copy=True)
    assert one.size > 10
    region_bytes(one)
    plog.close()


def test_a_damaged_batch_is_never_put_in_a_region(tmp_path: Path) -> None:
    plog, stored = damaged(tmp_path)
    with pytest.raises(DamagedLogError, match="CRC-32C mismatch") as caught:
        plog.read(14, 1 << 20, max_offset=plog.log_end_offset, zero_copy=True)
    assert caught.value.offset == 14
    damage = plog.damage
    assert damage is not None and damage.offset == 14, "reported for repair"
    # Reads below the damage stop before it, as buffered reads do.
    below = plog.read(10, 1 << 20, max_offset=plog.log_end_offset, zero_copy=True)
    assert region_bytes(below) == b"".join(stored[10:14])
    plog.close()
