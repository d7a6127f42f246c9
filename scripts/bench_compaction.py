"""Log compaction figures: how fast one full cleaning pass runs (MB/s of segments cleaned),
and what it leaves of a topic of many updates to a few keys.

    .venv/bin/python scripts/bench_compaction.py --mb 256
    .venv/bin/python scripts/bench_compaction.py            # 1 GiB over 10k keys

Builds, in a temporary directory, a segmented log of --mb MiB of 1 KiB records (keys drawn
uniformly from --keys keys, --records-per-batch records per uncompressed batch, segments of
--segment-mb MiB), rolls it, and runs one full pass of the cleaner's storage half
(:func:`raftka.common.storage.cleaner.clean_log`: map, rewrite, swap) on one thread, with real
fsyncs. Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from raftka.common.records import build_batch
from raftka.common.storage import LogConfig, SegmentedLog
from raftka.common.storage.cleaner import clean_log
from raftka.common.storage.compaction import CleaningRules

RECORD_BYTES = 1024
MIB = 1 << 20
T0 = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def build_log(directory: Path, args: argparse.Namespace, clock: Clock) -> tuple[SegmentedLog, int]:
    """The log, rolled so that every record is in a non-active segment; returns it and the
    number of records written."""
    config = LogConfig(segment_bytes=args.segment_mb * MIB, segment_ms=3_600_000)
    log = SegmentedLog.open(directory, config, clock=clock)
    rng = random.Random(7)
    filler = rng.randbytes(RECORD_BYTES * 2)
    target = args.mb * MIB
    written = 0
    records = 0
    while written < target:
        batch = build_batch(
            [
                (
                    clock.now + i,
                    f"key-{rng.randrange(args.keys):06d}".encode(),
                    filler[(start := rng.randrange(RECORD_BYTES)) : start + RECORD_BYTES],
                    (),
                )
                for i in range(args.records_per_batch)
            ]
        )
        log.append(batch)
        written += len(batch)
        records += args.records_per_batch
    log.flush()
    clock.now += config.segment_ms + 1  # the next append rolls by age
    log.append(build_batch([(clock.now, b"roll", b"roll", ())]))
    log.flush()
    return log, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=1024, help="MiB of records to clean")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--records-per-batch", type=int, default=10)
    parser.add_argument("--segment-mb", type=int, default=128)
    parser.add_argument("--dir", type=Path, default=None, help="parent of the temporary log")
    args = parser.parse_args()
    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-compaction-", dir=args.dir) as tmp:
        directory = Path(tmp) / "topic-0"
        started = time.monotonic()
        log, records = build_log(directory, args, clock)
        built = time.monotonic() - started
        before = log.size_bytes
        segments_before = len(log.segment_base_offsets)
        rules = CleaningRules(clock.now, 86_400_000, lambda header: False)
        started = time.monotonic()
        result = clean_log(log, first_dirty=0, end_offset=log.segment_base_offsets[-1], rules=rules)
        elapsed = time.monotonic() - started
        assert result is not None and result.completed
        after = log.size_bytes
        stats = result.stats
        print(
            f"log: {before / MIB:.1f} MiB, {records} records of {RECORD_BYTES} B over "
            f"{args.keys} keys, {args.records_per_batch} per batch, {segments_before} segments "
            f"of {args.segment_mb} MiB (built in {built:.1f} s)"
        )
        print(
            f"clean: {elapsed:.1f} s, {result.bytes_before / MIB / elapsed:.1f} MB/s cleaned "
            f"(MiB of old segments per second, map + rewrite + swap, real fsync)"
        )
        print(
            f"size: {before / MIB:.1f} MiB -> {after / MIB:.2f} MiB; records "
            f"{stats.records_read} -> {stats.records_kept} (kept {result.keys} keys); batches "
            f"{stats.batches_read} -> {stats.batches_written} ({stats.rebuilt} rebuilt, "
            f"{stats.fillers} fillers); segments {segments_before} -> "
            f"{len(log.segment_base_offsets)}"
        )
        log.close()


if __name__ == "__main__":
    main()
