"""The consumer's CPU per record on its decode path, without a server.

    .venv/bin/python scripts/bench_consumer_decode.py [--records-per-batch 250] [--size 1024]

Builds 16 batches of 1 KiB records (what the default producer writes: 256 KiB batches) and
times what the consumer does with a fetched buffer: ``batch_spans`` (with the CRC check) and
``CompletedFetch.take(500)`` until empty. Prints process CPU per record, best of 3 runs, with
the garbage collector at its defaults, frozen with higher thresholds, and off, and which record codec (C or Python) was used.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.client.consumer.records import CompletedFetch, batch_spans
from raftka.client.types import TopicPartition
from raftka.common.records import accel
from raftka.common.records.builder import build_batch


def cpu_per_record(data: bytes, fetches: int) -> float:
    tp = TopicPartition("t", 0)
    best = float("inf")
    for _ in range(3):
        start, records = time.process_time(), 0
        for _ in range(fetches):
            fetch = CompletedFetch(tp, data, 0, batch_spans(data, verify=True))
            while taken := fetch.take(500):
                records += len(taken)
        best = min(best, (time.process_time() - start) / records * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--records-per-batch", type=int, default=250)
    parser.add_argument("--size", type=int, default=1024, help="value bytes per record")
    parser.add_argument("--fetches", type=int, default=60)
    args = parser.parse_args()
    value, n = os.urandom(args.size), args.records_per_batch
    data = b"".join(
        bytes(build_batch([(1, None, value, ())] * n, base_offset=i * n)) for i in range(16)
    )
    print(f"codec: {accel.IMPLEMENTATION}")
    print(f"gc defaults {gc.get_threshold()}: {cpu_per_record(data, args.fetches):.2f} us/record")
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    print(f"gc frozen, {gc.get_threshold()}: {cpu_per_record(data, args.fetches):.2f} us/record")
    gc.disable()
    print(f"gc off: {cpu_per_record(data, args.fetches):.2f} us/record")


if __name__ == "__main__":
    main()
