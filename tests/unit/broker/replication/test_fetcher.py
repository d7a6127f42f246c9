"""A follower's fetcher applying its leader's answers, driven in-process (no gRPC): a
DivergingEpoch that would cut committed records is obeyed only after an unclean election."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from raftka.broker.log.partition_log import PartitionLog
from raftka.broker.replication.fetcher import FollowedPartition, LeaderFetcher
from raftka.common.metadata.model import LeaderRecoveryState
from raftka.common.rpc.fetch_wire import EpochEnd, FetchResult
from tests.conditions import until
from tests.unit.broker.support import T0, batch, open_partition

_T = TypeVar("_T")
LEADER_ID, FOLLOWER_ID = 1, 2


async def inline_io(fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    return fn(*args, **kwargs)


def follower_with_committed_records(
    tmp_path: Path, records: int, committed: int | None = None
) -> PartitionLog:
    """A follower log holding ``records`` records of leader epoch 0, the first ``committed``
    of them (default: all) committed."""
    leader = open_partition(tmp_path / "leader", hw_follows_log_end=False)
    leader.start_leader_epoch(0)
    for i in range(records):
        leader.append_as_leader(batch(tag=i), leader_epoch=0, now_ms=T0)
    follower = open_partition(tmp_path / "follower", hw_follows_log_end=False)
    follower.append_as_follower(leader.read(0, 1 << 20, max_offset=leader.log_end_offset).records)
    follower.set_high_watermark(records if committed is None else committed)
    leader.close()
    return follower


def fetcher_following(plog: PartitionLog, recovery: LeaderRecoveryState) -> LeaderFetcher:
    fetcher = LeaderFetcher(
        broker_id=FOLLOWER_ID,
        broker_epoch=lambda: 7,
        leader_id=LEADER_ID,
        address="127.0.0.1:1",
        io=inline_io,
    )
    fetcher.set_partitions(
        {("events", 0): FollowedPartition("events", 0, plog, 1, leader_recovery_state=recovery)}
    )
    return fetcher


def diverging(epoch: int, end_offset: int) -> FetchResult:
    return FetchResult(topic="events", partition=0, diverging_epoch=EpochEnd(epoch, end_offset))


def test_a_truncation_below_the_high_watermark_without_an_unclean_election_is_refused(
    tmp_path: Path,
) -> None:
    """The leader says epoch 0 ended at offset 2, but this replica saw offsets up to 5
    committed and no unclean election happened: the records stay, and the partition is no
    longer fetched at this leader epoch."""
    plog = follower_with_committed_records(tmp_path, 5)
    fetcher = fetcher_following(plog, LeaderRecoveryState.RECOVERED)
    applied = asyncio.run(fetcher._handle(fetcher.partitions[("events", 0)], diverging(0, 2)))
    assert applied is False
    assert (plog.log_end_offset, plog.high_watermark) == (5, 5), "nothing was cut"
    assert fetcher.refused == {("events", 0): 1}
    assert not fetcher._request().topics, "the refused partition is not fetched any more"
    # A new leader epoch (the metadata changed) lets the partition be fetched again.
    fetcher.set_partitions({("events", 0): FollowedPartition("events", 0, plog, 2)})
    assert [p.partition for t in fetcher._request().topics for p in t.partitions] == [0]
    plog.close()


def test_after_an_unclean_election_the_leaders_log_wins(tmp_path: Path) -> None:
    plog = follower_with_committed_records(tmp_path, 5)
    fetcher = fetcher_following(plog, LeaderRecoveryState.RECOVERING)
    applied = asyncio.run(fetcher._handle(fetcher.partitions[("events", 0)], diverging(0, 2)))
    assert applied is True
    assert plog.log_end_offset == 2
    assert fetcher.refused == {}
    plog.close()


def test_a_truncation_above_the_high_watermark_goes_ahead(tmp_path: Path) -> None:
    plog = follower_with_committed_records(tmp_path, 5, committed=2)
    fetcher = fetcher_following(plog, LeaderRecoveryState.RECOVERED)
    applied = asyncio.run(fetcher._handle(fetcher.partitions[("events", 0)], diverging(0, 3)))
    assert applied is True
    assert plog.log_end_offset == 3
    plog.close()


def test_an_unexpected_error_does_not_end_the_fetch_loop() -> None:
    """A follower whose fetch loop died would hold every acks=all write to that leader."""
    fetcher = LeaderFetcher(
        broker_id=FOLLOWER_ID,
        broker_epoch=lambda: 7,
        leader_id=LEADER_ID,
        address="127.0.0.1:1",  # never dialled: the fetch below is replaced
        io=inline_io,
    )
    rounds: list[object] = []

    async def fail_once_then_wait(stream: object) -> None:
        rounds.append(stream)
        if len(rounds) == 1:
            raise RuntimeError("a bug in applying an answer")
        await asyncio.Event().wait()

    fetcher._fetch_from = fail_once_then_wait  # type: ignore[method-assign]

    async def main() -> None:
        fetcher.start()
        await until(lambda: len(rounds) == 2, what="fetching again after the error")
        await fetcher.stop()

    asyncio.run(main())
