"""A partition log never serves damaged data: a read that meets a damaged batch raises
DamagedLogError naming the topic, partition and offset, reads at or past known damage are
refused, reads below it stop before it, and a follower's repair truncates the damage away."""

from __future__ import annotations

from pathlib import Path

import pytest

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.scrubber import Scrubber, ScrubStep
from raftka.broker.log.types import DamagedLogError
from raftka.common.records import iter_records
from raftka.common.storage.files import segment_paths
from raftka.common.storage.results import DamageReport
from tests.unit.broker.support import T0, batch, open_partition

SEGMENT_BYTES = "1200"


def write(plog: PartitionLog, count: int = 30) -> list[bytes]:
    """Appends ``count`` one-record batches; returns their stored bytes, by offset."""
    for i in range(count):
        plog.append_as_leader(bytes(batch(1, tag=i, value_size=40)), leader_epoch=1, now_ms=T0)
    return [bytes(plog.read(o, 1).records) for o in range(count)]


def known_damage(plog: PartitionLog) -> DamageReport | None:
    return plog.damage


def flip(plog_dir: Path, base: int, position: int, count: int = 4) -> None:
    path = segment_paths(plog_dir, base)[0]
    with open(path, "r+b") as f:
        f.seek(position)
        data = f.read(count)
        f.seek(position)
        f.write(bytes(b ^ 0xFF for b in data))


def damaged(tmp_path: Path, offset: int = 14) -> tuple[PartitionLog, list[bytes]]:
    """A cleanly closed, reopened partition log of 30 batches with 4 bytes flipped in the
    record of batch ``offset``."""
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    stored = write(plog)
    segment, position, _ = plog._log._state.locate(offset)
    base = segment.base_offset
    directory = plog.directory
    plog.close()
    flip(directory, base, position + 70)
    return open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES}), stored


def test_a_damaged_batch_is_refused_with_topic_partition_and_offset(tmp_path: Path) -> None:
    plog, _ = damaged(tmp_path)
    with pytest.raises(DamagedLogError) as caught:
        plog.read(14, 1 << 20)
    error = caught.value
    assert (error.topic, error.partition, error.offset) == ("events", 0, 14)
    assert error.message.startswith("events-0: cannot serve offset 14")
    assert "CRC-32C mismatch" in error.message
    assert error.code_name == "CORRUPT_MESSAGE" and error.retriable
    damage = plog.damage
    assert damage is not None and damage.offset == 14
    # Known damage: later offsets are refused without reading, earlier reads stop before it.
    with pytest.raises(DamagedLogError, match="cannot serve offset 20"):
        plog.read(20, 1 << 20)
    records = plog.read(10, 1 << 20).records
    assert [r.offset for r in iter_records(records)] == [10, 11, 12, 13]
    plog.close()


def test_a_follower_fetch_never_gets_the_damaged_bytes(tmp_path: Path) -> None:
    plog, _ = damaged(tmp_path)
    with pytest.raises(DamagedLogError):
        plog.read(14, 1 << 20, max_offset=plog.log_end_offset)
    plog.close()


def test_follower_repair_truncates_below_the_high_watermark_and_refetches(
    tmp_path: Path,
) -> None:
    plog, stored = damaged(tmp_path)
    with pytest.raises(DamagedLogError):
        plog.read(14, 1)
    assert plog.high_watermark == 30
    assert plog.truncate_damage() == 14
    assert plog.damage is None
    assert plog.log_end_offset == 14 and plog.high_watermark == 14
    # The leader's bytes, fetched again, are appended as they are.
    plog.append_as_follower(b"".join(stored[14:]))
    plog.set_high_watermark(30)
    for offset in range(30):
        assert plog.read(offset, 1).records == stored[offset]
    plog.close()


def test_a_truncation_past_the_damage_clears_it(tmp_path: Path) -> None:
    plog, _ = damaged(tmp_path)
    with pytest.raises(DamagedLogError):
        plog.read(14, 1)
    plog.truncate_to(20, allow_below_high_watermark=True)
    assert known_damage(plog) is not None  # still below the new end
    plog.truncate_to(12, allow_below_high_watermark=True)
    assert known_damage(plog) is None
    plog.close()


def test_a_hole_found_on_open_is_damage_from_its_first_offset(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    bases = plog.segment_base_offsets
    directory = plog.directory
    plog.close()
    for path in segment_paths(directory, bases[1]):
        path.unlink()
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    damage = plog.damage
    assert damage is not None and damage.offset == bases[1]
    with pytest.raises(DamagedLogError, match=f"cannot serve offset {bases[1] + 2}.*missing"):
        plog.read(bases[1] + 2, 1 << 20)
    plog.close()


def test_the_scrubber_finds_damage_nobody_read(tmp_path: Path) -> None:
    plog, _ = damaged(tmp_path)
    scrubber = Scrubber(lambda: [plog])
    steps: list[ScrubStep] = []
    while not steps or not steps[-1].pass_done:
        steps.append(scrubber.step(300))
        assert steps[-1].bytes_read <= 300 + 100  # bounded: at most one batch over
    found = [f for s in steps for f in s.found]
    assert [(f.log, f.report.offset) for f in found] == [(plog, 14)]
    assert plog.damage is not None and plog.damage.offset == 14
    assert scrubber.damage_found == 1
    # Known damage is not reported again; the log is skipped until repaired.
    assert scrubber.step(1 << 20).found == []
    plog.truncate_damage()
    while True:
        step = scrubber.step(1 << 20)
        assert step.found == []
        if step.pass_done:
            break
    plog.close()


def test_the_scrubber_passes_over_intact_logs_quietly(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    scrubber = Scrubber(lambda: [plog])
    total = 0
    for _ in range(100):
        step = scrubber.step(500)
        assert step.found == []
        total += step.bytes_read
        if step.pass_done:
            break
    # Every byte is read; a batch cut by a step's end is read again by the next step.
    assert plog.size_bytes <= total < 2 * plog.size_bytes
    assert scrubber.passes == 1
    plog.close()
