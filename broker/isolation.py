"""Reads at an isolation level (KIP-98): what a consumer's fetch or ListOffsets may see.

read_uncommitted sees every record below the high watermark. read_committed sees only the
records below the last stable offset (LSO: the first offset of the oldest open transaction,
or the high watermark when none is open), and is told which transactions in what it read
were aborted, so that it can drop their records.
"""

from __future__ import annotations

import dataclasses

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.log.types import FetchData
from raftka.common.errors import InvalidRequestError
from raftka.common.records.visibility import batches_end_offset

READ_UNCOMMITTED, READ_COMMITTED = 0, 1
ISOLATION_LEVELS = (READ_UNCOMMITTED, READ_COMMITTED)


def require_isolation_level(level: int) -> None:
    """InvalidRequestError for an isolation level that does not exist."""
    if level not in ISOLATION_LEVELS:
        raise InvalidRequestError(
            f"isolation_level {level} does not exist: use 0 (read_uncommitted) or 1 "
            "(read_committed)"
        )


def fetchable_offset(plog: PartitionLog, isolation_level: int) -> int:
    """The offset a consumer reads up to (excluded): the LSO for read_committed, else the
    high watermark."""
    return plog.last_stable_offset if isolation_level == READ_COMMITTED else plog.high_watermark


def read_isolated(
    plog: PartitionLog,
    fetch_offset: int,
    max_bytes: int,
    *,
    isolation_level: int,
    min_one_batch: bool,
) -> FetchData:
    """A consumer's read of ``plog`` (on an I/O thread: it may read the transaction index).
    read_committed: whole batches below the LSO, with the aborted transactions that have data
    in them (transaction-index entries ending at or after ``fetch_offset`` and starting before
    the end of the returned batches). The LSO is taken before the read: it only grows, so the
    one returned is never above what was read."""
    if isolation_level != READ_COMMITTED:
        return plog.read(fetch_offset, max_bytes, min_one_batch=min_one_batch)
    stable = plog.last_stable_offset
    data = plog.read(fetch_offset, max_bytes, max_offset=stable, min_one_batch=min_one_batch)
    end = batches_end_offset(data.records)
    aborted = () if end is None else tuple(plog.aborted_transactions(fetch_offset, end))
    return dataclasses.replace(data, last_stable_offset=stable, aborted=aborted)
