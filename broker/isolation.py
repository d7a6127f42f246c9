"""Reads at an isolation level (KIP-98): what a consumer's fetch or ListOffsets may see.

read_uncommitted sees every record below the high watermark. read_committed sees only the
records below the last stable offset (LSO: the first offset of the oldest open transaction,
or the high watermark when none is open), and is told which transactions in what it read
were aborted, so that it can drop their records.
"""

from __future__ import annotations

from raftka.broker.log.partition_log import PartitionLog
from raftka.common.errors import InvalidRequestError

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
