"""A follower's checks of the batches it fetched from its leader, before appending them."""

from __future__ import annotations

from collections.abc import Sequence

from raftka.broker.log.types import DivergentAppendError
from raftka.common.ids import TopicPartition
from raftka.common.records import BatchSpan, InvalidRecordError
from raftka.common.storage import UnexpectedAppendOffsetError


def check_follower_batches(
    spans: Sequence[BatchSpan], tp: TopicPartition, log_end: int, last_epoch: int
) -> list[tuple[int, int]]:
    """Checks fetched batches (already validated: CRC, length, magic) against a log ending at
    ``log_end`` whose last batch has leader epoch ``last_epoch``, and returns the (epoch,
    start offset) of each newer leader epoch they open, for the leader-epoch cache.

    The first batch must start at ``log_end`` (the rest follow on: the segmented log checks
    that), else UnexpectedAppendOffsetError; every batch carries a partition leader epoch
    (InvalidRecordError) and epochs never go backwards, within the batches or below
    ``last_epoch`` (DivergentAppendError: the log must be truncated first).
    """
    first = spans[0].header.base_offset
    if first != log_end:
        raise UnexpectedAppendOffsetError(
            log_end,
            first,
            0,
            message=(
                f"follower append to {tp}: the first batch has base offset {first} "
                f"but the log ends at {log_end}; nothing was written"
            ),
        )
    latest = last_epoch
    new_epochs: list[tuple[int, int]] = []
    for i, span in enumerate(spans):
        epoch, base = span.header.partition_leader_epoch, span.header.base_offset
        if epoch < 0:
            raise InvalidRecordError(
                f"follower append to {tp}: batch {i} (offset {base}) has no partition "
                "leader epoch; nothing was written"
            )
        if epoch < latest:
            raise DivergentAppendError(
                f"follower append to {tp}: batch {i} (offset {base}) has leader epoch "
                f"{epoch}, older than epoch {latest} before it; the log diverged from the "
                "leader's and must be truncated first; nothing was written"
            )
        if epoch > latest:
            new_epochs.append((epoch, base))
            latest = epoch
    return new_epochs
