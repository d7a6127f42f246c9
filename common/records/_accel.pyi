"""Types of the C accelerator (common/records/_accel.c); pycodec.py documents each function."""

from collections.abc import Iterable, Sequence
from typing import Any

from raftka.common.records.pycodec import Buffer, DecodedRecord

def validate_records(
    data: Buffer, count: int, base_timestamp: int, position: int
) -> tuple[int, int]: ...
def decode_records(data: Buffer, count: int, position: int) -> list[DecodedRecord]: ...
def decode_records_as(
    data: Buffer,
    count: int,
    position: int,
    cls: type[tuple[Any, ...]],
    prefix: tuple[Any, ...],
    suffix: tuple[Any, ...],
    base_offset: int,
    base_timestamp: int,
    stamp: int | None,
    start: int,
) -> list[Any]: ...
def encode_record(
    out: bytearray,
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | bytearray | memoryview | None,
    value: bytes | bytearray | memoryview | None,
    headers: Iterable[tuple[str, bytes | bytearray | memoryview | None]],
) -> None: ...
def encode_records(
    out: bytearray,
    records: Iterable[Sequence[Any]],
    base_timestamp: int,
    first_offset_delta: int,
    max_timestamp: int,
) -> int: ...
