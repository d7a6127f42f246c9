"""Per-batch compression codecs: gzip (stdlib), snappy (cramjam), lz4 frame, zstd.

The whole record stream after RecordsCount is compressed as one unit. LZ4 uses the frame
format with the settings Kafka's own codec writes (independent 64 KiB blocks, no content size,
no checksums), so other Kafka clients can read what we write. Zstd frames are read without
relying on a content size because Java producers do not store it in the frame.

Snappy as Kafka's Java client writes it is xerial-framed (snappy-java's SnappyOutputStream):
a 16-byte header (the magic ``\\x82SNAPPY\\x00``, version 1, compatible version 1, both int32)
then blocks of [int32 compressed length][raw snappy block], each block at most 32 KiB
uncompressed. Some other clients (librdkafka among them) write one raw snappy block with no
framing. We write the xerial framing, and read both, as Java's reader does.

:func:`decompress` takes a hard output limit (``max_output``): a stream that would decompress
to more raises RecordTooLargeError before that much memory is used.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from raftka.common.records.batch import Buffer, Compression
from raftka.common.records.errors import (
    CorruptRecordError,
    RecordTooLargeError,
    UnsupportedCompressionError,
)

SUPPORTED_COMPRESSION = frozenset(
    {Compression.NONE, Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD}
)

_GZIP_LEVEL = 6
_ZSTD_LEVEL = 3

XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_VERSION = 1
_XERIAL_BLOCK_BYTES = 32 * 1024
"""snappy-java's default block size (what Kafka's Java producer writes)."""
_INT32 = struct.Struct(">i")


def check_supported(codec: Compression) -> None:
    if codec not in SUPPORTED_COMPRESSION:
        raise UnsupportedCompressionError(
            f"compression codec {codec.name.lower()} (id {int(codec)}) is not supported; "
            "use none, gzip, snappy, lz4 or zstd"
        )


def compress(codec: Compression, data: Buffer) -> bytes:
    """Compresses a record stream with ``codec``."""
    check_supported(codec)
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
    if codec is Compression.SNAPPY:
        return _xerial_compress(data)
    if codec is Compression.LZ4:
        return bytes(
            lz4.frame.compress(
                data,
                block_size=lz4.frame.BLOCKSIZE_MAX64KB,
                block_linked=False,
                content_checksum=False,
                store_size=False,
            )
        )
    return bytes(
        zstandard.ZstdCompressor(level=_ZSTD_LEVEL, write_content_size=False).compress(data)
    )


def decompress(codec: Compression, data: Buffer, *, max_output: int | None = None) -> bytes:
    """Decompresses a record stream; damaged input raises CorruptRecordError, and output
    beyond ``max_output`` bytes (when given) RecordTooLargeError, without decompressing it
    all."""
    check_supported(codec)
    if codec is Compression.NONE:
        return bytes(data)
    limit = -1 if max_output is None else max_output
    try:
        if codec is Compression.GZIP:
            return _gzip_decompress(data, limit)
        if codec is Compression.SNAPPY:
            return _snappy_decompress(data, limit)
        if codec is Compression.LZ4:
            return _lz4_decompress(data, limit)
        return _zstd_decompress(data, limit)
    except (CorruptRecordError, RecordTooLargeError):
        raise
    except (
        OSError,
        EOFError,
        zlib.error,
        RuntimeError,
        ValueError,
        zstandard.ZstdError,
        cramjam.DecompressionError,
    ) as exc:
        raise CorruptRecordError(
            f"cannot decompress {codec.name.lower()} record stream: {exc}"
        ) from exc


def _too_large(codec: str, limit: int) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"{codec} record stream decompresses to more than {limit} bytes, the limit for one "
        "batch; send smaller batches"
    )


def _gzip_decompress(data: Buffer, limit: int) -> bytes:
    out = bytearray()
    rest = bytes(data)
    while rest:  # a gzip stream may hold several members, one after the other
        dobj = zlib.decompressobj(wbits=31)
        out += dobj.decompress(rest, limit + 1 - len(out) if limit >= 0 else 0)
        if limit >= 0 and (len(out) > limit or dobj.unconsumed_tail):
            raise _too_large("gzip", limit)
        if not dobj.eof:
            raise CorruptRecordError("gzip stream ends before the end of its member")
        rest = dobj.unused_data
    return bytes(out)


def _lz4_decompress(data: Buffer, limit: int) -> bytes:
    dobj = lz4.frame.LZ4FrameDecompressor()
    out = bytes(dobj.decompress(data, max_length=limit + 1 if limit >= 0 else -1))
    if limit >= 0 and len(out) > limit:
        raise _too_large("lz4", limit)
    if not dobj.eof:
        raise CorruptRecordError("lz4 stream ends before the end of its frame")
    return out


def _zstd_decompress(data: Buffer, limit: int) -> bytes:
    if limit < 0:
        dobj = zstandard.ZstdDecompressor().decompressobj()
        out = bytes(dobj.decompress(data))
        if not dobj.eof:
            raise CorruptRecordError("zstd stream ends before the end of its frame")
        return out
    # One call with an output buffer of a given size: it fails both when the frame is
    # truncated and when the output would not fit, so grow the buffer (allocating the whole
    # limit up front costs more than decompressing) and tell the two apart at the limit.
    decompressor = zstandard.ZstdDecompressor()
    size = min(limit, max(8 * len(data), 1 << 16))
    while True:
        try:
            return bytes(decompressor.decompress(data, max_output_size=size))
        except zstandard.ZstdError:
            if size >= limit:
                break
            size = min(limit, size * 8)
    reader = decompressor.stream_reader(bytes(data))
    if len(reader.read(limit + 1)) > limit:
        raise _too_large("zstd", limit)
    raise CorruptRecordError("zstd stream is damaged or ends before the end of its frame")


def _xerial_compress(data: Buffer) -> bytes:
    view = memoryview(data)
    parts = [_XERIAL_HEADER.pack(XERIAL_MAGIC, _XERIAL_VERSION, _XERIAL_VERSION)]
    for start in range(0, len(view), _XERIAL_BLOCK_BYTES):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + _XERIAL_BLOCK_BYTES]))
        parts.append(_INT32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: Buffer, limit: int) -> bytes:
    view = memoryview(data)
    if bytes(view[: len(XERIAL_MAGIC)]) != XERIAL_MAGIC:
        return _snappy_block(view, limit, 0)  # one raw block, no framing
    if len(view) < _XERIAL_HEADER.size:
        raise CorruptRecordError("snappy stream: truncated xerial header")
    out = bytearray()
    position = _XERIAL_HEADER.size
    while position < len(view):
        if len(view) - position < 4:
            raise CorruptRecordError(f"snappy stream: truncated block length at byte {position}")
        (size,) = _INT32.unpack_from(view, position)
        position += 4
        if size < 0 or size > len(view) - position:
            raise CorruptRecordError(
                f"snappy stream: block of {size} bytes at byte {position}, "
                f"{len(view) - position} remain"
            )
        out += _snappy_block(view[position : position + size], limit, len(out))
        position += size
    return bytes(out)


def _snappy_block(block: memoryview, limit: int, before: int) -> bytes:
    # A raw block starts with its uncompressed length: check it before decompressing.
    if limit >= 0 and before + int(cramjam.snappy.decompress_raw_len(block)) > limit:
        raise _too_large("snappy", limit)
    return bytes(cramjam.snappy.decompress_raw(block))
