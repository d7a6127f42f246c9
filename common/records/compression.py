"""Per-batch compression codecs: gzip (stdlib), lz4 frame, zstd. Snappy is not supported.

The whole record stream after RecordsCount is compressed as one unit. LZ4 uses the frame
format with the settings Kafka's own codec writes (independent 64 KiB blocks, no content size,
no checksums), so other Kafka clients can read what we write. Zstd frames are read with a
streaming decompressor because Java producers do not store the content size in the frame.
"""

from __future__ import annotations

import gzip
import zlib

import lz4.frame
import zstandard

from raftka.common.records.batch import Buffer, Compression
from raftka.common.records.errors import CorruptRecordError, UnsupportedCompressionError

SUPPORTED_COMPRESSION = frozenset(
    {Compression.NONE, Compression.GZIP, Compression.LZ4, Compression.ZSTD}
)

_GZIP_LEVEL = 6
_ZSTD_LEVEL = 3


def check_supported(codec: Compression) -> None:
    if codec not in SUPPORTED_COMPRESSION:
        raise UnsupportedCompressionError(
            f"compression codec {codec.name.lower()} (id {int(codec)}) is not supported; "
            "use none, gzip, lz4 or zstd"
        )


def compress(codec: Compression, data: Buffer) -> bytes:
    """Compresses a record stream with ``codec``."""
    check_supported(codec)
    if codec is Compression.NONE:
        return bytes(data)
    if codec is Compression.GZIP:
        return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
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


def decompress(codec: Compression, data: Buffer) -> bytes:
    """Decompresses a record stream; damaged input raises CorruptRecordError."""
    check_supported(codec)
    if codec is Compression.NONE:
        return bytes(data)
    try:
        if codec is Compression.GZIP:
            return gzip.decompress(data)
        if codec is Compression.LZ4:
            return bytes(lz4.frame.decompress(data))
        dobj = zstandard.ZstdDecompressor().decompressobj()
        out = bytes(dobj.decompress(data))
        if not dobj.eof:
            raise CorruptRecordError("zstd stream ends before the end of its frame")
        return out
    except CorruptRecordError:
        raise
    except (OSError, EOFError, zlib.error, RuntimeError, ValueError, zstandard.ZstdError) as exc:
        raise CorruptRecordError(
            f"cannot decompress {codec.name.lower()} record stream: {exc}"
        ) from exc
