"""ElectLeaders (preferred and unclean) and the automatic preferred-leader rebalance."""

from __future__ import annotations

import pytest

from raftka.common.errors import InvalidRequestError
from raftka.common.metadata.model import NO_LEADER, LeaderRecoveryState
from raftka.common.metadata.records import partition_change_record
from raftka.controller.control.elections import LeaderMove, elect_leaders, plan_leader_rebalance
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    ELECTION_TYPE_PREFERRED,
    ELECTION_TYPE_UNCLEAN,
    ElectLeadersRequest,
    ElectLeadersResponse,
    PartitionElectionResult,
    TopicPartitions,
)

from .harness import Harness


def _elect(h: Harness, election_type: int, *named: tuple[str, list[int]]) -> ElectLeadersResponse:
    request = ElectLeadersRequest(
        election_type=election_type,  # type: ignore[arg-type]
        topic_partitions=[TopicPartitions(topic=t, partitions=p) for t, p in named],
    )
    return h.commit(elect_leaders(h.image, request))


def _results(response: ElectLeadersResponse) -> dict[tuple[str, int], PartitionElectionResult]:
    return {(t.topic, p.partition): p for t in response.results for p in t.partitions}


def _moved_leader_setup() -> Harness:
    """Partition t-0 prefers 1 but 2 leads; 1 is back in the ISR."""
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1, 2, 3), (1, 2, 3), 2), ((2, 3, 1), (2, 3, 1), 2)])
    return h


# ---- preferred ----


def test_preferred_election_moves_leadership_to_the_first_replica() -> None:
    h = _moved_leader_setup()
    before = h.partition("t", 0)
    result = _results(_elect(h, ELECTION_TYPE_PREFERRED, ("t", [0])))[("t", 0)]
    after = h.partition("t", 0)
    assert result.error_code == ErrorCode.NONE and not result.unclean
    assert after.leader == 1 and after.isr == before.isr
    assert after.leader_epoch == before.leader_epoch + 1
    assert (result.leader, result.leader_epoch) == (1, after.leader_epoch)


def test_preferred_leader_already_leading_needs_no_election() -> None:
    h = _moved_leader_setup()
    result = _results(_elect(h, ELECTION_TYPE_PREFERRED, ("t", [1])))[("t", 1)]
    assert result.error_code == ErrorCode.ELECTION_NOT_NEEDED
    assert result.leader == 2


def test_preferred_replica_out_of_sync_or_fenced_is_not_available() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1, 2, 3), (2, 3), 2), ((3, 2, 1), (2, 3), 2)])
    h.heartbeat(3, want_fence=True)  # leaves the ISR of partition 1
    before = (h.partition("t", 0), h.partition("t", 1))
    results = _results(_elect(h, ELECTION_TYPE_PREFERRED, ("t", [0, 1])))
    assert results[("t", 0)].error_code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert results[("t", 1)].error_code == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert (h.partition("t", 0), h.partition("t", 1)) == before


def test_all_partitions_leaves_out_the_ones_needing_no_election() -> None:
    h = _moved_leader_setup()
    h.add_topic("u", [((3, 1, 2), (3, 1, 2), 3)])
    response = _elect(h, ELECTION_TYPE_PREFERRED)
    assert list(_results(response)) == [("t", 0)]
    assert h.partition("t", 0).leader == 1


def test_named_topic_without_partitions_means_all_of_its_partitions() -> None:
    h = _moved_leader_setup()
    results = _results(_elect(h, ELECTION_TYPE_PREFERRED, ("t", [])))
    assert {k: r.error_code for k, r in results.items()} == {
        ("t", 0): ErrorCode.NONE,
        ("t", 1): ErrorCode.ELECTION_NOT_NEEDED,
    }


def test_unknown_and_duplicate_partitions_get_their_own_errors() -> None:
    h = _moved_leader_setup()
    response = _elect(h, ELECTION_TYPE_PREFERRED, ("t", [0, 7, 0]), ("nope", [0]), ("gone", []))
    codes = [(t.topic, p.partition, p.error_code) for t in response.results for p in t.partitions]
    assert codes == [
        ("t", 0, ErrorCode.NONE),
        ("t", 7, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("t", 0, ErrorCode.INVALID_REQUEST),
        ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ("gone", -1, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    assert h.partition("t", 0).leader == 1


def test_unknown_election_type_is_rejected() -> None:
    h = _moved_leader_setup()
    with pytest.raises(InvalidRequestError):
        elect_leaders(h.image, ElectLeadersRequest(election_type=5))  # type: ignore[arg-type]


# ---- unclean ----


def _offline_setup() -> Harness:
    """t-0 has replicas [1, 2, 3], ISR [1] and no leader: 1 is fenced."""
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1, 2, 3), (1,), 1)])
    h.heartbeat(1, want_fence=True)
    state = h.partition("t", 0)
    assert state.leader == NO_LEADER and state.isr == (1,)
    return h


def test_unclean_election_elects_outside_the_isr_and_reports_it() -> None:
    h = _offline_setup()
    result = _results(_elect(h, ELECTION_TYPE_UNCLEAN, ("t", [0])))[("t", 0)]
    after = h.partition("t", 0)
    assert result.error_code == ErrorCode.NONE and result.unclean
    assert after.leader == 2 and after.isr == (2,)
    assert after.leader_recovery_state is LeaderRecoveryState.RECOVERING
    assert result.leader == 2 and result.leader_epoch == after.leader_epoch


def test_unclean_election_prefers_an_in_sync_replica() -> None:
    h = _offline_setup()
    h.heartbeat(1)  # back, but the unfence already re-elected it
    assert h.partition("t", 0).leader == 1
    result = _results(_elect(h, ELECTION_TYPE_UNCLEAN, ("t", [0])))[("t", 0)]
    assert result.error_code == ErrorCode.ELECTION_NOT_NEEDED and not result.unclean


def test_unclean_election_with_no_active_replica() -> None:
    h = _offline_setup()
    h.heartbeat(2, want_fence=True)
    h.heartbeat(3, want_fence=True)
    result = _results(_elect(h, ELECTION_TYPE_UNCLEAN, ("t", [0])))[("t", 0)]
    assert result.error_code == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    assert h.partition("t", 0).leader == NO_LEADER


# ---- automatic rebalance ----


def _imbalanced(leaders: list[int]) -> Harness:
    """Ten partitions preferring broker 1 (replicas [1, 2, 3], all in sync), led as given."""
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1, 2, 3), (1, 2, 3), leader) for leader in leaders])
    return h


def test_rebalance_below_or_at_the_threshold_does_nothing() -> None:
    h = _imbalanced([2] + [1] * 9)  # 10% imbalance: not above 10%
    result = plan_leader_rebalance(h.image, imbalance_percentage=10)
    assert result.records == () and result.response == []


def test_rebalance_above_the_threshold_moves_every_imbalanced_partition() -> None:
    h = _imbalanced([2, 3] + [1] * 8)  # 20%
    moves = h.commit(plan_leader_rebalance(h.image, imbalance_percentage=10))
    assert moves == [LeaderMove("t", 0, 2, 1), LeaderMove("t", 1, 3, 1)]  # type: ignore[arg-type]
    assert h.leaders("t") == [1] * 10


def test_rebalance_skips_preferred_replicas_that_cannot_lead_and_respects_the_cap() -> None:
    h = _imbalanced([2, 2, 2, 1])
    h.apply(partition_change_record("id-t", 0, isr=[2, 3]))  # 1 not in sync for t-0
    moves = h.commit(plan_leader_rebalance(h.image, imbalance_percentage=10, max_elections=1))
    assert [(m.topic, m.partition) for m in moves] == [("t", 1)]
    assert h.leaders("t") == [2, 1, 2, 1]
