"""What the record codec costs, compiled (C accelerator) and pure Python, side by side.

    .venv/bin/python scripts/bench_codec.py [--runs 7]

Prints, each figure the median of ``--runs`` timed runs (single thread, in process: no gRPC,
no disk):

- validate: the leader's walk of every record of one batch (decompression included for lz4),
  per batch and per record, for 1 KiB and 100 B records, uncompressed and lz4;
- encode: the producer's cost per record through RecordBatchBuilder.append (one codec call
  per record) and .extend (one per batch);
- decode: the consumer's cost per record through decode_batch;
- broker: validate_produced_batches on a 256 KiB batch of 1 KiB records, headers only (the
  validation before record checks existed) against the full walk with each codec.

Numbers are printed, not asserted.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import timeit
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType
from typing import Any

from raftka.broker.log import validator
from raftka.common.records import (
    Compression,
    RecordBatchBuilder,
    accel,
    build_batch,
    decode_batch,
    pycodec,
    split_batches,
)

BATCH_BYTES = 256 * 1024
BASE_TIMESTAMP = 1_700_000_000_000
LIMIT = 1 << 30


def codecs() -> dict[str, ModuleType]:
    found = {"python": pycodec}
    compiled = accel.compiled()
    if compiled is not None:
        found = {"c": compiled, **found}
    return found


def rows(record_bytes: int, count: int) -> list[tuple[int, bytes, bytes, tuple[()]]]:
    rng = random.Random(record_bytes)
    words = [bytes(rng.choices(b"abcdefghij klmnopqrstuvwxyz", k=8)) for _ in range(500)]
    out = []
    for i in range(count):
        value = b"".join(rng.choices(words, k=record_bytes // 8 + 1))[:record_bytes]
        out.append((BASE_TIMESTAMP + i, f"key-{i}".encode(), value, ()))
    return out


@contextmanager
def using(codec: ModuleType) -> Iterator[None]:
    """Points the builder, decoder and validator at ``codec`` for the block."""
    names = ("validate_records", "decode_records", "encode_record", "encode_records")
    saved = {name: getattr(accel, name) for name in names}
    try:
        for name in names:
            setattr(accel, name, getattr(codec, name))
        yield
    finally:
        for name, function in saved.items():
            setattr(accel, name, function)


@contextmanager
def headers_only() -> Iterator[None]:
    """The validator as it was before record checks: no walk of the records."""
    saved = validator.check_records
    validator.check_records = lambda *args, **kwargs: (-1, -1, None)
    try:
        yield
    finally:
        validator.check_records = saved


Variant = tuple[str, Callable[[], AbstractContextManager[None]], Callable[[], Any]]
"""(label, the context to time it in, the call)."""


def compare(variants: list[Variant], runs: int, min_time: float = 0.05) -> dict[str, float]:
    """Median seconds per call of each variant. The runs are interleaved (one run of each in
    turn), so that a machine shared with other work slows every variant alike."""
    numbers = {}
    for label, context, call in variants:
        with context():
            number, _ = timeit.Timer(call).autorange()
        numbers[label] = max(1, int(number * min_time / 0.2))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    for _ in range(runs):
        for label, context, call in variants:
            with context():
                seconds = timeit.Timer(call).timeit(numbers[label])
            samples[label].append(seconds / numbers[label])
    return {label: statistics.median(values) for label, values in samples.items()}


def per_codec(call: Callable[[], Any]) -> list[Variant]:
    return [(name, functools.partial(using, codec), call) for name, codec in codecs().items()]


def bench_validate(runs: int) -> None:
    print("validate: one batch's records walked (lz4: decompressed, then walked)")
    print(
        f"{'records':>8} {'codec':>6} {'impl':>7} {'batch bytes':>11} {'us/batch':>10} "
        f"{'ns/record':>10}"
    )
    for record_bytes in (1024, 100):
        count = BATCH_BYTES // (record_bytes + 12)
        data = rows(record_bytes, count)
        for compression in (Compression.NONE, Compression.LZ4):
            batch = build_batch(data, compression=compression)
            (span,) = split_batches(batch)
            check = functools.partial(
                validator.check_records,
                memoryview(batch),
                0,
                span.size,
                span.header,
                max_message_bytes=LIMIT,
                where="t-0",
            )
            for name, seconds in compare(per_codec(check), runs).items():
                print(
                    f"{record_bytes:>7}B {compression.name.lower():>6} {name:>7} "
                    f"{len(batch):>11} {seconds * 1e6:>10.1f} {seconds * 1e9 / count:>10.1f}"
                )


Rows = list[tuple[int, bytes, bytes, tuple[()]]]


def by_append(data: Rows) -> None:
    builder = RecordBatchBuilder()
    for timestamp, key, value, headers in data:
        builder.append(timestamp, key, value, headers)
    builder.build()


def by_extend(data: Rows) -> None:
    builder = RecordBatchBuilder()
    builder.extend(data)
    builder.build()


def bench_encode(runs: int) -> None:
    print("\nencode: RecordBatchBuilder, per record (build() of the batch included)")
    print(f"{'records':>8} {'impl':>7} {'append ns':>10} {'extend ns':>10}")
    for record_bytes in (1024, 100):
        count = BATCH_BYTES // (record_bytes + 12)
        data = rows(record_bytes, count)
        append = compare(per_codec(functools.partial(by_append, data)), runs)
        extend = compare(per_codec(functools.partial(by_extend, data)), runs)
        for name in codecs():
            print(
                f"{record_bytes:>7}B {name:>7} {append[name] * 1e9 / count:>10.0f} "
                f"{extend[name] * 1e9 / count:>10.0f}"
            )


def bench_decode(runs: int) -> None:
    print("\ndecode: decode_batch, per record (Record objects included)")
    print(f"{'records':>8} {'impl':>7} {'ns/record':>10}")
    for record_bytes in (1024, 100):
        count = BATCH_BYTES // (record_bytes + 12)
        batch = build_batch(rows(record_bytes, count))
        decode = functools.partial(decode_batch, batch, verify=False)
        for name, seconds in compare(per_codec(decode), runs).items():
            print(f"{record_bytes:>7}B {name:>7} {seconds * 1e9 / count:>10.0f}")


def bench_broker(runs: int) -> None:
    print("\nbroker: validate_produced_batches, one 256 KiB batch of 1 KiB records")
    print(f"{'codec':>6} {'validation':>22} {'us/batch':>10} {'MB/s':>8}")
    data = rows(1024, BATCH_BYTES // 1024)
    for compression in (Compression.NONE, Compression.LZ4):
        batch = bytes(build_batch(data, compression=compression))
        validate = functools.partial(
            validator.validate_produced_batches,
            batch,
            max_message_bytes=LIMIT,
            log_append_time_ms=None,
        )
        variants: list[Variant] = [("headers only (before)", headers_only, validate)]
        variants += [
            (f"every record, {name}", functools.partial(using, codec), validate)
            for name, codec in codecs().items()
        ]
        for label, seconds in compare(variants, runs).items():
            print(
                f"{compression.name.lower():>6} {label:>22} {seconds * 1e6:>10.1f} "
                f"{BATCH_BYTES / seconds / 1e6:>8.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median)")
    args = parser.parse_args()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"codec in use by default: {accel.IMPLEMENTATION}; medians of {args.runs} runs; "
        f"load average {load} on {os.cpu_count()} cores\n"
    )
    bench_validate(args.runs)
    bench_encode(args.runs)
    bench_decode(args.runs)
    bench_broker(args.runs)


if __name__ == "__main__":
    main()
