"""The leader's check of a follower's fetch position against its leader-epoch cache (KIP-595's
DivergingEpoch in Fetch, Kafka's ``Partition.validateOffsetAndEpoch``; truncation rules of
KIP-101/KIP-279): is the follower's log a prefix of the leader's?"""

from __future__ import annotations

from raftka.broker.log.leader_epoch_cache import UNDEFINED_EPOCH, EpochEndOffset, LeaderEpochCache
from raftka.common.errors import InvalidRequestError
from raftka.common.ids import TopicPartition
from raftka.common.storage import LogOffsetOutOfRangeError


def check_divergence(
    cache: LeaderEpochCache,
    tp: TopicPartition,
    start: int,
    end: int,
    fetch_offset: int,
    last_fetched_epoch: int,
) -> EpochEndOffset | None:
    """None when a follower whose log ends at ``fetch_offset`` with a last batch in
    ``last_fetched_epoch`` holds a prefix of the leader's log (``start``..``end``, epochs in
    ``cache``); otherwise the DivergingEpoch to answer with. See
    :meth:`raftka.broker.log.partition_log.PartitionLog.divergence_check` for the cases."""
    if fetch_offset < 0 or last_fetched_epoch < UNDEFINED_EPOCH:
        raise InvalidRequestError(
            f"invalid fetch position: offset {fetch_offset}, last fetched epoch "
            f"{last_fetched_epoch}"
        )
    if fetch_offset < start:
        raise LogOffsetOutOfRangeError(
            fetch_offset,
            start,
            end,
            message=(
                f"fetch offset {fetch_offset} is below the log start offset {start} of "
                f"{tp} (log end {end})"
            ),
        )
    if last_fetched_epoch == UNDEFINED_EPOCH:
        if fetch_offset > end:
            raise LogOffsetOutOfRangeError(
                fetch_offset,
                start,
                end,
                message=(
                    f"fetch offset {fetch_offset} is past the log end offset {end} of "
                    f"{tp} and carries no epoch"
                ),
            )
        return None
    found = cache.end_offset_for(last_fetched_epoch, end)
    if found.undefined:
        latest = cache.latest_epoch
        if latest == UNDEFINED_EPOCH:
            return None if fetch_offset <= end else EpochEndOffset(UNDEFINED_EPOCH, end)
        return EpochEndOffset(latest, end)
    if found.epoch != last_fetched_epoch or found.end_offset < fetch_offset:
        return found
    return None
