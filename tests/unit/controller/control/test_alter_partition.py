"""AlterPartition: validation order and outcomes (KIP-497, with KIP-903 broker epochs)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from raftka.common.errors import BrokerIdNotRegisteredError, StaleBrokerEpochError
from raftka.common.metadata.model import LeaderRecoveryState
from raftka.common.metadata.records import partition_change_record
from raftka.controller.control.alter_partition import alter_partition
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.controller_pb2 import (
    AlterPartitionData,
    AlterPartitionRequest,
    AlterPartitionResponse,
    AlterPartitionResult,
    AlterPartitionTopic,
    BrokerEpochPair,
)

from .harness import Harness

RECOVERED = int(LeaderRecoveryState.RECOVERED)
RECOVERING = int(LeaderRecoveryState.RECOVERING)


def _setup(isr: Iterable[int] = (1, 2, 3), brokers: Iterable[int] = (1, 2, 3, 4)) -> Harness:
    h = Harness()
    h.add_brokers(brokers)
    h.add_topic("t", [((1, 2, 3), tuple(isr), 1)], leader_epoch=5)
    return h


def _data(
    h: Harness,
    isr: Iterable[int],
    *,
    partition: int = 0,
    leader_epoch: int | None = None,
    partition_epoch: int | None = None,
    recovery: int = RECOVERED,
    epochs: dict[int, int] | None = None,
) -> AlterPartitionData:
    state = h.partition("t", 0) if partition == 0 else None
    return AlterPartitionData(
        partition_index=partition,
        leader_epoch=(state.leader_epoch if state else 0) if leader_epoch is None else leader_epoch,
        partition_epoch=(state.partition_epoch if state else 0)
        if partition_epoch is None
        else partition_epoch,
        leader_recovery_state=recovery,
        new_isr_with_epochs=[
            BrokerEpochPair(
                broker_id=b,
                broker_epoch=(epochs or {}).get(
                    b, h.epoch(b) if h.image.broker(b) is not None else -1
                ),
            )
            for b in isr
        ],
    )


def _send(
    h: Harness,
    *data: AlterPartitionData,
    sender: int = 1,
    topic_id: str = "id-t",
    commit: bool = True,
) -> AlterPartitionResponse:
    request = AlterPartitionRequest(
        broker_id=sender,
        broker_epoch=h.epoch(sender),
        topics=[AlterPartitionTopic(topic_id=topic_id, partitions=data)],
    )
    result = alter_partition(h.image, request)
    return h.commit(result) if commit else result.response


def _one(response: AlterPartitionResponse) -> AlterPartitionResult:
    ((topic,),) = [response.topics]
    (result,) = topic.partitions
    return result


def _error(h: Harness, data: AlterPartitionData, sender: int = 1) -> int:
    before = h.partition("t", 0)
    result = _one(_send(h, data, sender=sender))
    assert h.partition("t", 0) == before, "a rejected change must write nothing"
    return result.error_code


# ---- success ----


def test_shrink_writes_a_change_bumping_only_the_partition_epoch() -> None:
    h = _setup()
    before = h.partition("t", 0)
    result = _one(_send(h, _data(h, [1, 2])))
    after = h.partition("t", 0)
    assert result.error_code == ErrorCode.NONE
    assert after.isr == (1, 2)
    assert after.leader_epoch == before.leader_epoch == 5
    assert after.partition_epoch == before.partition_epoch + 1
    assert (result.leader_id, result.leader_epoch, list(result.isr), result.partition_epoch) == (
        1,
        5,
        [1, 2],
        after.partition_epoch,
    )


def test_expand_adds_a_caught_up_member() -> None:
    h = _setup(isr=[1])
    result = _one(_send(h, _data(h, [1, 3])))
    assert result.error_code == ErrorCode.NONE and list(result.isr) == [1, 3]
    assert h.partition("t", 0).isr == (1, 3)


def test_unchanged_isr_writes_nothing_and_returns_the_current_state() -> None:
    h = _setup()
    request = AlterPartitionRequest(
        broker_id=1,
        broker_epoch=h.epoch(1),
        topics=[AlterPartitionTopic(topic_id="id-t", partitions=[_data(h, [1, 2, 3])])],
    )
    result = alter_partition(h.image, request)
    assert result.records == ()
    assert _one(result.response).partition_epoch == h.partition("t", 0).partition_epoch


def test_recovering_leader_reports_recovered() -> None:
    h = _setup(isr=[1])
    h.apply(partition_change_record("id-t", 0, leader_recovery_state=RECOVERING))
    result = _one(_send(h, _data(h, [1], recovery=RECOVERED)))
    assert result.error_code == ErrorCode.NONE and result.leader_recovery_state == RECOVERED
    assert h.partition("t", 0).leader_recovery_state is LeaderRecoveryState.RECOVERED


def test_minus_one_member_epoch_skips_the_epoch_check() -> None:
    h = _setup(isr=[1])
    result = _one(_send(h, _data(h, [1, 2], epochs={2: -1})))
    assert result.error_code == ErrorCode.NONE


# ---- request-level errors ----


def test_stale_broker_epoch_fails_the_whole_request() -> None:
    h = _setup()
    request = AlterPartitionRequest(
        broker_id=1,
        broker_epoch=h.epoch(1) - 1,
        topics=[AlterPartitionTopic(topic_id="id-t", partitions=[_data(h, [1, 2])])],
    )
    with pytest.raises(StaleBrokerEpochError):
        alter_partition(h.image, request)
    with pytest.raises(BrokerIdNotRegisteredError):
        alter_partition(h.image, AlterPartitionRequest(broker_id=99, broker_epoch=1))


# ---- per-partition errors, in the order the controller checks them ----


def test_newer_epochs_than_the_controller_give_not_controller() -> None:
    h = _setup()
    assert _error(h, _data(h, [1, 2], leader_epoch=6)) == ErrorCode.NOT_CONTROLLER
    state = h.partition("t", 0)
    assert (
        _error(h, _data(h, [1, 2], partition_epoch=state.partition_epoch + 1))
        == ErrorCode.NOT_CONTROLLER
    )
    # (1) comes before (3): even a non-leader with newer epochs gets NOT_CONTROLLER
    assert _error(h, _data(h, [2], leader_epoch=6), sender=2) == ErrorCode.NOT_CONTROLLER


def test_older_leader_epoch_is_fenced_before_the_sender_check() -> None:
    h = _setup()
    assert _error(h, _data(h, [1, 2], leader_epoch=4)) == ErrorCode.FENCED_LEADER_EPOCH
    assert _error(h, _data(h, [2, 3], leader_epoch=4), sender=2) == ErrorCode.FENCED_LEADER_EPOCH


def test_non_leader_sender_is_invalid_before_the_partition_epoch_check() -> None:
    h = _setup()
    h.apply(partition_change_record("id-t", 0, isr=[1, 2, 3]))  # partition epoch 1
    assert _error(h, _data(h, [2, 3], partition_epoch=0), sender=2) == ErrorCode.INVALID_REQUEST


def test_older_partition_epoch_is_invalid_update_version() -> None:
    h = _setup()
    h.apply(partition_change_record("id-t", 0, isr=[1, 2]))
    data = _data(h, [1], partition_epoch=0)
    assert _error(h, data) == ErrorCode.INVALID_UPDATE_VERSION


@pytest.mark.parametrize(
    "isr",
    [
        pytest.param([1, 4], id="outside the replicas"),
        pytest.param([2, 3], id="without the leader"),
        pytest.param([1, 2, 2], id="duplicates"),
        pytest.param([], id="empty"),
    ],
)
def test_isr_shape_errors_are_invalid_request(isr: list[int]) -> None:
    h = _setup()
    assert _error(h, _data(h, isr)) == ErrorCode.INVALID_REQUEST


def test_isr_shape_is_checked_before_eligibility() -> None:
    h = _setup(brokers=[1, 2, 3])
    # broker 4 is not even registered: the shape check (not a replica) fires first
    assert _error(h, _data(h, [1, 4])) == ErrorCode.INVALID_REQUEST


def test_recovery_state_rules() -> None:
    h = _setup(isr=[1])
    # RECOVERED -> RECOVERING is not allowed
    assert _error(h, _data(h, [1], recovery=RECOVERING)) == ErrorCode.INVALID_REQUEST
    assert _error(h, _data(h, [1], recovery=7)) == ErrorCode.INVALID_REQUEST
    h.apply(partition_change_record("id-t", 0, leader_recovery_state=RECOVERING))
    # RECOVERING with an ISR of more than one member is not allowed
    assert _error(h, _data(h, [1, 2], recovery=RECOVERING)) == ErrorCode.INVALID_REQUEST
    # ... but RECOVERING -> RECOVERING with ISR = [leader] is a no-op
    assert _one(_send(h, _data(h, [1], recovery=RECOVERING))).error_code == ErrorCode.NONE


def test_recovery_check_comes_before_eligibility() -> None:
    h = _setup(isr=[1], brokers=[1, 2, 3])
    h.heartbeat(2, want_fence=True)
    h.apply(partition_change_record("id-t", 0, leader_recovery_state=RECOVERING))
    assert _error(h, _data(h, [1, 2], recovery=RECOVERING)) == ErrorCode.INVALID_REQUEST


def test_fenced_member_is_ineligible() -> None:
    h = _setup(isr=[1, 2])
    h.heartbeat(3, want_fence=True)
    assert _error(h, _data(h, [1, 2, 3])) == ErrorCode.INELIGIBLE_REPLICA


def test_member_in_controlled_shutdown_is_ineligible() -> None:
    h = _setup(isr=[1, 2])
    h.add_topic("led-by-3", [((3,), (3,), 3)])
    h.heartbeat(3, want_shut_down=True)
    reg = h.image.broker(3)
    assert reg is not None and reg.in_controlled_shutdown
    assert _error(h, _data(h, [1, 2, 3])) == ErrorCode.INELIGIBLE_REPLICA


def test_unregistered_member_is_ineligible() -> None:
    h = _setup(isr=[1, 2], brokers=[1, 2])
    assert _error(h, _data(h, [1, 2, 3])) == ErrorCode.INELIGIBLE_REPLICA


def test_member_with_another_broker_epoch_is_ineligible() -> None:
    h = _setup(isr=[1, 2])
    assert (
        _error(h, _data(h, [1, 2, 3], epochs={3: h.epoch(3) - 1})) == ErrorCode.INELIGIBLE_REPLICA
    )


def test_unknown_topic_id_and_partition() -> None:
    h = _setup()
    assert _one(_send(h, _data(h, [1]), topic_id="nope")).error_code == ErrorCode.UNKNOWN_TOPIC_ID
    data = _data(h, [1])
    data.partition_index = 9
    assert _one(_send(h, data)).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_partitions_are_judged_one_by_one_and_duplicates_rejected() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.add_topic("t", [((1, 2, 3), (1, 2, 3), 1), ((1, 2, 3), (1, 2, 3), 1)])
    good = _data(h, [1, 2])
    bad = AlterPartitionData(partition_index=1, leader_epoch=3, partition_epoch=0)
    response = _send(h, good, bad, _data(h, [1]))
    codes = [p.error_code for p in response.topics[0].partitions]
    assert codes == [ErrorCode.NONE, ErrorCode.NOT_CONTROLLER, ErrorCode.INVALID_REQUEST]
    assert h.partition("t", 0).isr == (1, 2) and h.partition("t", 1).isr == (1, 2, 3)


# ---- reassignment completion ----


def test_expanding_into_the_last_target_replica_completes_a_reassignment() -> None:
    h = _setup(isr=[1, 2, 3])
    # moving from [1, 2, 3] to [1, 2, 4]: replicas [1, 2, 4, 3], adding [4], removing [3]
    h.apply(
        partition_change_record(
            "id-t", 0, replicas=[1, 2, 4, 3], adding_replicas=[4], removing_replicas=[3]
        )
    )
    before = h.partition("t", 0)
    result = _one(_send(h, _data(h, [1, 2, 3, 4])))
    after = h.partition("t", 0)
    assert result.error_code == ErrorCode.NONE
    assert after.replicas == (1, 2, 4)
    assert after.isr == (1, 2, 4)
    assert after.adding_replicas == () and after.removing_replicas == ()
    assert after.leader == 1 and after.leader_epoch == before.leader_epoch + 1  # 3 left
    assert list(result.isr) == [1, 2, 4] and result.leader_epoch == after.leader_epoch


def test_completion_moves_leadership_off_a_removed_leader() -> None:
    h = _setup(isr=[1, 2, 3])
    # moving from [1, 2, 3] to [2, 3, 4]: the leader 1 is being removed
    h.apply(
        partition_change_record(
            "id-t", 0, replicas=[2, 3, 4, 1], adding_replicas=[4], removing_replicas=[1]
        )
    )
    result = _one(_send(h, _data(h, [1, 2, 3, 4])))
    after = h.partition("t", 0)
    assert after.replicas == (2, 3, 4) and after.isr == (2, 3, 4)
    assert after.leader == 2 and result.leader_id == 2


def test_partial_catch_up_leaves_the_reassignment_in_progress() -> None:
    h = _setup(isr=[1, 2, 3])
    h.apply(
        partition_change_record(
            "id-t",
            0,
            replicas=[1, 4, 5, 2, 3],
            adding_replicas=[4, 5],
            removing_replicas=[2, 3],
        )
    )
    h.register(5)
    h.heartbeat(5)
    _send(h, _data(h, [1, 2, 3, 4]))
    after = h.partition("t", 0)
    assert after.replicas == (1, 4, 5, 2, 3) and after.adding_replicas == (4, 5)
    assert after.isr == (1, 2, 3, 4)


# ---- a leader with a damaged copy resigns ----


def test_a_resigning_leader_leaves_the_isr_and_another_member_leads() -> None:
    h = _setup()
    before = h.partition("t", 0)
    data = _data(h, [2, 3])
    data.leader_resigns = True
    result = _one(_send(h, data))
    after = h.partition("t", 0)
    assert result.error_code == ErrorCode.NONE
    assert after.isr == (2, 3) and after.leader == 2
    assert after.leader_epoch == before.leader_epoch + 1


@pytest.mark.parametrize("isr", [[1, 2], [], [2, 2]])
def test_a_resigning_leader_must_name_another_member_and_not_itself(isr: list[int]) -> None:
    h = _setup()
    data = _data(h, isr)
    data.leader_resigns = True
    assert _error(h, data) == ErrorCode.INVALID_REQUEST
