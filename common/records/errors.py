"""Errors raised while parsing, validating, building or decoding record batches.

Each error says what was wrong and where, so that a produce request can be answered with a
precise per-partition error and a recovery scan can log why it stopped. ``retriable`` tells a
client whether sending the same bytes again may succeed (corruption in transit may not recur).
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class RecordError(RaftkaError):
    """Base class for every record-batch error."""

    code = ErrorCode.INVALID_RECORD


class CorruptRecordError(RecordError):
    """The bytes are damaged: CRC mismatch, truncated buffer, or an impossible length."""

    code = ErrorCode.CORRUPT_MESSAGE
    retriable = True


class InvalidRecordError(RecordError):
    """The bytes are intact but not a valid v2 batch: wrong magic, bad field values."""

    code = ErrorCode.INVALID_RECORD


class InvalidTimestampError(RecordError):
    """A record timestamp is negative (other than -1, "no timestamp") or outside the topic's
    ``message.timestamp.before.max.ms`` / ``message.timestamp.after.max.ms`` of the broker's
    clock."""

    code = ErrorCode.INVALID_TIMESTAMP


class UnsupportedCompressionError(RecordError):
    """The batch uses a compression codec this build cannot read or write (snappy, unknown ids)."""

    code = ErrorCode.UNSUPPORTED_COMPRESSION_TYPE


class RecordTooLargeError(RecordError):
    """A batch is larger than the configured maximum batch size."""

    code = ErrorCode.MESSAGE_TOO_LARGE
