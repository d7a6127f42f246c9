"""Both record-stream codecs, for tests that must hold each of them to the same behaviour.

The C accelerator is required unless RAFTKA_NO_ACCEL is set (then its cases are skipped):
scripts/setup-env.sh builds it, so a missing one is a broken build, not a reason to skip.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from raftka.common.records import Compression, compress, pycodec
from raftka.common.records.accel import DISABLE_ENV, compiled
from raftka.common.records.batch import HEADER_SIZE, HEADER_STRUCT, LOG_OVERHEAD, MAGIC, write_crc
from raftka.common.records.varint import encode_varint, encode_varlong


def c_codec() -> ModuleType:
    module = compiled()
    if module is None:
        if os.environ.get(DISABLE_ENV, "") not in ("", "0"):
            pytest.skip(f"{DISABLE_ENV} is set and the C accelerator is not built")
        pytest.fail(
            "the C accelerator (raftka.common.records._accel) is not built: run "
            "scripts/setup-env.sh"
        )
    return module


IMPLEMENTATIONS = ["c", "python"]


def codec_named(name: str) -> ModuleType:
    return c_codec() if name == "c" else pycodec


def record(
    body_fields: bytes | None = None,
    *,
    timestamp_delta: int = 0,
    offset_delta: int = 0,
    key: bytes | None = b"k",
    value: bytes | None = b"v",
    headers: bytes = b"\x00",
    length: int | None = None,
) -> bytes:
    """One raw record: the fields as given (``body_fields`` replaces everything after the
    attributes byte), prefixed by ``length`` (default: the body's real length)."""
    if body_fields is None:
        body_fields = (
            encode_varlong(timestamp_delta)
            + encode_varint(offset_delta)
            + field(key)
            + field(value)
            + headers
        )
    body = b"\x00" + body_fields
    return encode_varint(len(body) if length is None else length) + body


def field(data: bytes | None) -> bytes:
    return encode_varint(-1) if data is None else encode_varint(len(data)) + data


def records(n: int) -> bytes:
    return b"".join(record(offset_delta=i, timestamp_delta=i) for i in range(n))


def raw_batch(
    stream: bytes,
    count: int,
    *,
    last_offset_delta: int | None = None,
    compression: Compression = Compression.NONE,
    base_timestamp: int = 1_700_000_000_000,
    max_timestamp: int | None = None,
) -> bytearray:
    """A batch with a valid header and CRC around any record stream (compressed as asked)."""
    payload = compress(compression, stream) if compression is not Compression.NONE else stream
    out = bytearray(HEADER_SIZE + len(payload))
    HEADER_STRUCT.pack_into(
        out,
        0,
        0,
        len(out) - LOG_OVERHEAD,
        -1,
        MAGIC,
        0,
        int(compression),
        count - 1 if last_offset_delta is None else last_offset_delta,
        base_timestamp,
        base_timestamp if max_timestamp is None else max_timestamp,
        -1,
        -1,
        -1,
        count,
    )
    out[HEADER_SIZE:] = payload
    write_crc(out)
    return out
