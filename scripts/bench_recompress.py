"""What a topic's compression.type costs the leader: records/s through the produce
validation when the broker recompresses each batch, next to keeping the producer's codec.

    .venv/bin/python scripts/bench_recompress.py --seconds 2

Batches of 256 KiB of 1 KiB records (text-like values, about 3x compressible). Single
thread, in process (no gRPC, no disk): this is the CPU the append path adds per batch.
Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import random
import time

from raftka.broker.log.validator import validate_produced_batches
from raftka.common.records import Compression, build_batch

RECORD_BYTES = 1024
BATCH_BYTES = 256 * 1024
CODECS = (
    Compression.NONE,
    Compression.GZIP,
    Compression.SNAPPY,
    Compression.LZ4,
    Compression.ZSTD,
)


def make_batch(codec: Compression, seed: int = 1) -> bytearray:
    rng = random.Random(seed)
    words = [
        bytes(rng.choices(b"abcdefghijklmnopqrstuvwxyz", k=rng.randint(2, 9))) for _ in range(2000)
    ]
    records = []
    for i in range(BATCH_BYTES // RECORD_BYTES):
        value = b" ".join(rng.choices(words, k=300))[:RECORD_BYTES].ljust(RECORD_BYTES, b".")
        records.append((1_700_000_000_000 + i, f"key-{i}".encode(), value, ()))
    return build_batch(records, compression=codec, producer_id=1, producer_epoch=0, base_sequence=0)


def measure(data: bytearray, target: Compression | None, seconds: float) -> float:
    """Batches per second through validate_produced_batches."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        validate_produced_batches(
            data, max_message_bytes=1 << 30, log_append_time_ms=None, compression=target
        )
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per pair")
    args = parser.parse_args()
    per_batch = BATCH_BYTES // RECORD_BYTES
    print(f"{per_batch} records of {RECORD_BYTES} B per batch; records/s (MB/s uncompressed)")
    print(f"{'producer':>9} -> {'topic':<9} {'batch bytes':>11} {'records/s':>12} {'MB/s':>8}")
    batches = {codec: make_batch(codec) for codec in CODECS}
    for source in CODECS:
        data = batches[source]
        rate = measure(data, None, args.seconds)
        print(
            f"{source.name.lower():>9} -> {'producer':<9} {len(data):>11} "
            f"{rate * per_batch:>12,.0f} {rate * BATCH_BYTES / 1e6:>8.1f}"
        )
        for target in CODECS:
            if target is source:
                continue
            rate = measure(data, target, args.seconds)
            print(
                f"{source.name.lower():>9} -> {target.name.lower():<9} {len(data):>11} "
                f"{rate * per_batch:>12,.0f} {rate * BATCH_BYTES / 1e6:>8.1f}"
            )


if __name__ == "__main__":
    main()
