"""Errors raised while parsing, validating, building or decoding record batches.

Each error says what was wrong and where, so that a produce request can be answered with a
precise per-partition error and a recovery scan can log why it stopped. ``retriable`` tells a
client whether sending the same bytes again may succeed (corruption in transit may not recur).
"""

from __future__ import annotations


class RecordError(Exception):
    """Base class for every record-batch error."""

    retriable: bool = False


class CorruptRecordError(RecordError):
    """The bytes are damaged: CRC mismatch, truncated buffer, or an impossible length."""

    retriable = True


class InvalidRecordError(RecordError):
    """The bytes are intact but not a valid v2 batch: wrong magic, bad field values."""


class UnsupportedCompressionError(RecordError):
    """The batch uses a compression codec this build cannot read or write (snappy, unknown ids)."""


class RecordTooLargeError(RecordError):
    """A batch is larger than the configured maximum batch size."""
