"""Broker registration, heartbeats and fencing (KIP-631's broker lifecycle)."""

from __future__ import annotations

import pytest

from raftka.common.errors import (
    BrokerIdNotRegisteredError,
    DuplicateBrokerRegistrationError,
    InconsistentClusterIdError,
    InvalidRequestError,
    StaleBrokerEpochError,
)
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import NO_LEADER, LeaderRecoveryState
from raftka.controller.control.cluster import (
    BrokerControlState,
    ClusterManager,
    broker_state,
    describe_brokers,
    fence_broker_records,
)
from raftka.controller.control.result import MAX_SLICE_RECORDS, ControllerResult
from raftka.controller.control.sessions import BrokerSessions
from raftka.v1.common_pb2 import Endpoint
from raftka.v1.controller_pb2 import (
    BrokerHeartbeatRequest,
    BrokerHeartbeatResponse,
    RegisterBrokerRequest,
)
from raftka.v1.metadata_pb2 import MetadataBatch

from .harness import CLUSTER_ID, SESSION_TIMEOUT_MS, Harness


def _request(**overrides: object) -> RegisterBrokerRequest:
    fields: dict[str, object] = {
        "broker_id": 1,
        "cluster_id": CLUSTER_ID,
        "incarnation_id": "inc-1",
        "listeners": [Endpoint(name="CLIENT", host="h", port=9092)],
    }
    fields.update(overrides)
    return RegisterBrokerRequest(**fields)  # type: ignore[arg-type]


def _state(h: Harness, broker_id: int) -> BrokerControlState:
    reg = h.image.broker(broker_id)
    assert reg is not None
    return broker_state(reg)


# ---- registration ----


def test_new_registration_gets_the_index_of_its_record_and_starts_fenced() -> None:
    h = Harness()
    h.image.apply_batch(MetadataBatch(), 1)  # some earlier entry
    result = h.cluster.register_broker(h.image, _request(), next_index=2, now_ms=0)
    assert result.response.broker_epoch == 2
    assert [r.WhichOneof("record") for r in result.records] == ["register_broker"]
    assert result.records[0].register_broker.broker_epoch == 2
    assert result.records[0].register_broker.fenced
    h.commit(result)
    reg = h.image.broker(1)
    assert reg is not None and reg.epoch == 2 and reg.fenced
    assert _state(h, 1) is BrokerControlState.FENCED


def test_wrong_cluster_id_is_rejected() -> None:
    h = Harness()
    with pytest.raises(InconsistentClusterIdError, match="'other'"):
        h.cluster.register_broker(h.image, _request(cluster_id="other"), next_index=1, now_ms=0)
    assert h.image.broker(1) is None


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"broker_id": -1}, "broker_id must be >= 0"),
        ({"incarnation_id": ""}, "incarnation_id is empty"),
        ({"listeners": [Endpoint(name="A", host="h", port=0)]}, "port 0"),
        ({"listeners": [Endpoint(name="A", host="h", port=70000)]}, "port 70000"),
        ({"listeners": [Endpoint(name="A", host="", port=1)]}, "needs a name and a host"),
        (
            {
                "listeners": [
                    Endpoint(name="A", host="h", port=1),
                    Endpoint(name="A", host="g", port=2),
                ]
            },
            "not unique",
        ),
    ],
)
def test_malformed_registration_is_rejected(overrides: dict[str, object], fragment: str) -> None:
    h = Harness()
    with pytest.raises(InvalidRequestError, match=fragment):
        h.cluster.register_broker(h.image, _request(**overrides), next_index=1, now_ms=0)


def test_same_incarnation_re_registering_keeps_epoch_and_state() -> None:
    h = Harness()
    h.add_brokers([1])
    reg_before = h.image.broker(1)
    result = h.cluster.register_broker(
        h.image,
        _request(incarnation_id="inc-1", listeners=[_listener(1)]),
        next_index=99,
        now_ms=5,
    )
    assert result.records == ()
    assert reg_before is not None and result.response.broker_epoch == reg_before.epoch
    assert h.image.broker(1) == reg_before and not reg_before.fenced


def _listener(broker_id: int) -> Endpoint:
    return Endpoint(name="CLIENT", host="127.0.0.1", port=9000 + broker_id)


def test_same_incarnation_with_different_listeners_is_rejected() -> None:
    h = Harness()
    h.add_brokers([1])
    with pytest.raises(InvalidRequestError, match="different listeners"):
        h.cluster.register_broker(
            h.image,
            _request(listeners=[Endpoint(name="CLIENT", host="other", port=1)]),
            next_index=9,
            now_ms=0,
        )


def test_new_incarnation_with_a_live_session_is_a_duplicate() -> None:
    h = Harness()
    h.add_brokers([1])
    h.now_ms = SESSION_TIMEOUT_MS  # still within the session
    with pytest.raises(DuplicateBrokerRegistrationError, match="live session"):
        h.cluster.register_broker(
            h.image, _request(incarnation_id="other"), next_index=h.next_index, now_ms=h.now_ms
        )
    reg = h.image.broker(1)
    assert reg is not None and reg.incarnation_id == "inc-1"


def test_new_incarnation_after_session_expiry_replaces_and_leaves_isrs() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("t", 4, 2)
    old_epoch = h.image.broker(1)
    h.now_ms = SESSION_TIMEOUT_MS + 1
    h.sessions.touch(2, h.now_ms)
    result = h.cluster.register_broker(
        h.image,
        _request(incarnation_id="restarted", listeners=[_listener(1)]),
        next_index=h.next_index,
        now_ms=h.now_ms,
    )
    kinds = [r.WhichOneof("record") for r in result.records]
    assert kinds[-1] == "register_broker" and set(kinds[:-1]) == {"partition_change"}
    epoch = h.commit(result).broker_epoch
    reg = h.image.broker(1)
    assert reg is not None and old_epoch is not None
    assert reg.epoch == epoch > old_epoch.epoch and reg.fenced and reg.incarnation_id == "restarted"
    for view in h.image.partitions():
        assert view.state.isr == (2,) and view.state.leader == 2


def test_new_incarnation_of_a_fenced_broker_registers_at_once() -> None:
    h = Harness()
    h.add_brokers([1])
    h.heartbeat(1, want_fence=True)
    epoch = h.register(1, incarnation="second")
    reg = h.image.broker(1)
    assert reg is not None and reg.epoch == epoch and reg.incarnation_id == "second"


# ---- heartbeats ----


def test_heartbeat_from_unknown_broker() -> None:
    h = Harness()
    with pytest.raises(BrokerIdNotRegisteredError):
        h.heartbeat(5, epoch=1)


def test_heartbeat_with_stale_epoch() -> None:
    h = Harness()
    h.add_brokers([1])
    old = h.image.broker(1)
    assert old is not None
    h.heartbeat(1, want_fence=True)
    h.register(1, incarnation="second")
    before = h.image.copy()
    with pytest.raises(StaleBrokerEpochError, match=f"sent broker epoch {old.epoch}"):
        h.heartbeat(1, epoch=old.epoch)
    assert h.image == before


def test_fenced_broker_is_unfenced_only_once_caught_up() -> None:
    h = Harness()
    epoch = h.register(1)
    response = h.heartbeat(1, metadata_index=epoch - 1)
    assert (response.is_caught_up, response.is_fenced, response.should_shut_down) == (
        False,
        True,
        False,
    )
    assert _state(h, 1) is BrokerControlState.FENCED
    response = h.heartbeat(1, metadata_index=epoch)
    assert (response.is_caught_up, response.is_fenced) == (True, False)
    assert _state(h, 1) is BrokerControlState.UNFENCED


def test_fenced_broker_that_wants_fence_stays_fenced() -> None:
    h = Harness()
    h.register(1)
    response = h.heartbeat(1, want_fence=True)
    assert response.is_caught_up and response.is_fenced
    assert _state(h, 1) is BrokerControlState.FENCED


def test_fenced_broker_wanting_shutdown_may_exit_at_once() -> None:
    h = Harness()
    h.register(1)
    result = h.cluster.heartbeat(
        h.image, _hb(h, 1, want_shut_down=True), next_index=h.next_index, now_ms=0
    )
    assert result.records == ()
    assert result.response.should_shut_down and result.response.is_fenced


def _hb(h: Harness, broker_id: int, **flags: bool) -> BrokerHeartbeatRequest:
    reg = h.image.broker(broker_id)
    assert reg is not None
    request = BrokerHeartbeatRequest(
        broker_id=broker_id,
        broker_epoch=reg.epoch,
        current_metadata_index=h.image.last_applied_index,
    )
    for flag, value in flags.items():
        setattr(request, flag, value)
    return request


def test_unfenced_broker_wanting_fence_leaves_isrs_and_leaderships() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.create_topic("t", 6, 3)
    assert 1 in h.leaders("t")
    response = h.heartbeat(1, want_fence=True)
    assert response.is_fenced and not response.should_shut_down
    assert _state(h, 1) is BrokerControlState.FENCED
    for view in h.image.partitions():
        assert 1 not in view.state.isr and view.state.leader in (2, 3)
        assert len(view.state.isr) == 2


def test_unfenced_broker_without_leaderships_shuts_down_now() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    response = h.heartbeat(1, want_shut_down=True)
    assert response.should_shut_down and response.is_fenced
    reg = h.image.broker(1)
    assert reg is not None and reg.fenced


def test_want_fence_and_shutdown_together_shut_down_now() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("t", 2, 2)
    response = h.heartbeat(1, want_fence=True, want_shut_down=True)
    assert response.should_shut_down
    assert all(1 not in v.state.isr for v in h.image.partitions())


def test_controlled_shutdown_moves_leaders_then_waits_for_other_brokers() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.create_topic("t", 6, 2)
    led = [v.partition_id for v in h.image.partitions_led_by(1)]
    assert led
    entry_index = h.next_index
    response = h.heartbeat(1, want_shut_down=True)
    assert not response.should_shut_down and not response.is_fenced
    assert _state(h, 1) is BrokerControlState.CONTROLLED_SHUTDOWN
    assert not h.image.has_leaderships(1)
    assert all(1 not in v.state.isr for v in h.image.partitions())
    # A partition whose only ISR member was 1 would be offline; here RF 2 always has another.
    assert all(v.state.has_leader for v in h.image.partitions())
    # Brokers 2 and 3 have not yet reported applying the shutdown entry.
    h.sessions.touch(2, h.now_ms, entry_index - 1)
    h.sessions.touch(3, h.now_ms, entry_index)
    response = h.heartbeat(1, want_shut_down=True)
    assert not response.should_shut_down
    h.heartbeat(2, metadata_index=entry_index)
    response = h.heartbeat(1, want_shut_down=True)
    assert response.should_shut_down and response.is_fenced
    reg = h.image.broker(1)
    assert reg is not None and reg.fenced and reg.in_controlled_shutdown


def test_controlled_shutdown_of_sole_isr_member_leaves_partition_offline() -> None:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("t", 1, 1)
    response = h.heartbeat(1, want_shut_down=True)
    assert not response.should_shut_down
    topic = h.image.topic("t")
    assert topic is not None
    state = topic.partitions[0]
    assert state is not None and state.leader == NO_LEADER and state.isr == (1,)
    # No other active broker: nothing to wait for.
    assert h.heartbeat(1, want_shut_down=True).should_shut_down


def test_controlled_shutdown_entered_under_a_previous_controller() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("t", 2, 2)
    h.heartbeat(1, want_shut_down=True)
    # Failover: a new controller has fresh sessions and does not know the shutdown index.
    h.sessions = BrokerSessions(SESSION_TIMEOUT_MS, started_ms=h.now_ms)
    h.cluster = ClusterManager(CLUSTER_ID, h.sessions)
    assert not h.heartbeat(1, want_shut_down=True).should_shut_down
    h.heartbeat(2)
    assert h.heartbeat(1, want_shut_down=True).should_shut_down


def test_unfencing_elects_leaders_for_offline_partitions_it_is_in_sync_for() -> None:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("t", 2, 1)
    h.heartbeat(1, want_fence=True)
    assert h.leaders("t") == [NO_LEADER, NO_LEADER]
    epochs_before = [v.state.leader_epoch for v in h.image.partitions()]
    h.heartbeat(1)
    assert h.leaders("t") == [1, 1]
    assert [v.state.leader_epoch for v in h.image.partitions()] == [e + 1 for e in epochs_before]


# ---- sessions and fencing ----


def test_expired_sessions_are_fenced_one_at_a_time() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    h.create_topic("t", 3, 3)
    h.now_ms = 5000
    h.heartbeat(3)
    h.now_ms = 1000 + SESSION_TIMEOUT_MS  # 1 and 2 (last heard at 0) lapsed; 3 did not
    assert h.sessions.expired(h.image, h.now_ms) == [1, 2]
    fenced = h.commit(h.cluster.fence_one_expired_broker(h.image, h.now_ms))
    assert fenced == 1
    assert h.commit(h.cluster.fence_one_expired_broker(h.image, h.now_ms)) == 2
    assert h.commit(h.cluster.fence_one_expired_broker(h.image, h.now_ms)) is None
    for view in h.image.partitions():
        assert view.state.isr == (3,) and view.state.leader == 3


def test_heartbeats_keep_sessions_alive_and_failover_grants_a_full_session() -> None:
    h = Harness()
    h.add_brokers([1])
    for step in range(1, 5):
        h.now_ms = step * (SESSION_TIMEOUT_MS - 1)
        assert h.sessions.expired(h.image, h.now_ms) == []
        h.heartbeat(1)
    fresh = BrokerSessions(SESSION_TIMEOUT_MS, started_ms=h.now_ms)
    assert fresh.expired(h.image, h.now_ms + SESSION_TIMEOUT_MS) == []
    assert fresh.expired(h.image, h.now_ms + SESSION_TIMEOUT_MS + 1) == [1]


def test_a_stall_of_the_controller_is_not_held_against_the_brokers() -> None:
    """The controller's loop stalled (its heartbeat inbox unread): that time is forgiven to
    every session, heard from or not, until the broker's next contact."""
    h = Harness()
    h.add_brokers([1, 2])
    h.heartbeat(1)
    stalled = 2000
    h.sessions.forgive(stalled)
    h.now_ms = SESSION_TIMEOUT_MS + stalled  # past the timeout only by the stall
    assert h.sessions.expired(h.image, h.now_ms) == []
    assert h.sessions.is_live(h.image, 1, h.now_ms)
    h.heartbeat(1)  # a contact ends what was forgiven
    assert h.sessions.silent_ms(1, h.now_ms) == 0
    h.now_ms += SESSION_TIMEOUT_MS + 1
    assert sorted(h.sessions.expired(h.image, h.now_ms)) == [1, 2]
    fresh = BrokerSessions(SESSION_TIMEOUT_MS, started_ms=0)
    fresh.forgive(stalled)  # a broker this controller never heard from is forgiven too
    assert fresh.silent_ms(7, SESSION_TIMEOUT_MS + stalled) == SESSION_TIMEOUT_MS


def test_fence_broker_records_for_unknown_or_fenced_broker_are_empty() -> None:
    h = Harness()
    h.register(1)
    assert fence_broker_records(h.image, 1) == []
    assert fence_broker_records(h.image, 42) == []


def test_fencing_never_empties_an_isr() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("t", 4, 2)
    h.heartbeat(2, want_fence=True)
    h.heartbeat(1, want_fence=True)
    for view in h.image.partitions():
        assert view.state.isr == (1,) and view.state.leader == NO_LEADER


def _isr_1_with_2_out_of_sync(unclean: bool) -> Harness:
    """Topic with replicas {1, 2}, ISR [1], both brokers active."""
    h = Harness()
    h.add_brokers([1, 2])
    configs = {"unclean.leader.election.enable": "true"} if unclean else {}
    h.create_topic("t", 2, 2, configs)
    h.heartbeat(2, want_fence=True)
    h.heartbeat(2)
    assert h.image.is_active(2)
    assert all(v.state.isr == (1,) for v in h.image.partitions())
    return h


def test_no_unclean_election_by_default() -> None:
    h = _isr_1_with_2_out_of_sync(unclean=False)
    h.heartbeat(1, want_fence=True)
    for view in h.image.partitions():
        assert view.state.leader == NO_LEADER and view.state.isr == (1,)
        assert view.state.leader_recovery_state is LeaderRecoveryState.RECOVERED


def test_unclean_election_when_the_topic_allows_it() -> None:
    h = _isr_1_with_2_out_of_sync(unclean=True)
    h.heartbeat(1, want_fence=True)
    for view in h.image.partitions():
        assert view.state.leader == 2 and view.state.isr == (2,)
        assert view.state.leader_recovery_state is LeaderRecoveryState.RECOVERING


def test_unfencing_an_out_of_sync_replica_elects_it_only_if_unclean_allowed() -> None:
    for unclean in (False, True):
        h = Harness()
        h.add_brokers([1, 2])
        configs = {"unclean.leader.election.enable": "true"} if unclean else {}
        h.create_topic("t", 1, 2, configs)
        h.heartbeat(2, want_fence=True)  # ISR [1]
        h.heartbeat(1, want_fence=True)  # leader -1, ISR [1]
        assert h.leaders("t") == [NO_LEADER]
        h.heartbeat(2)
        assert h.leaders("t") == ([2] if unclean else [NO_LEADER])


def test_describe_brokers() -> None:
    h = Harness()
    h.add_brokers([2, 1])
    h.register(3, rack="r")
    described = describe_brokers(h.image)
    assert [b.broker_id for b in described] == [1, 2, 3]
    assert [b.fenced for b in described] == [False, False, True]
    assert described[2].rack == "r" and described[0].endpoints[0].port == 9001


def _fenced_in_one_block(h: Harness, broker_id: int) -> MetadataImage:
    image = h.image.copy()
    image.apply_batch(MetadataBatch(records=fence_broker_records(image, broker_id)), h.next_index)
    return image


def test_fencing_a_broker_with_many_replicas_comes_in_slices() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    partitions = 2 * MAX_SLICE_RECORDS + 10
    h.create_topic("big", partitions, 3)
    one_block = _fenced_in_one_block(h, 1)
    slices: list[ControllerResult[BrokerHeartbeatResponse]] = []
    while not slices or slices[-1].more:
        request = BrokerHeartbeatRequest(
            broker_id=1,
            broker_epoch=h.epoch(1),
            current_metadata_index=h.image.last_applied_index,
            want_fence=True,
        )
        result = h.cluster.heartbeat(h.image, request, next_index=h.next_index, now_ms=h.now_ms)
        slices.append(result)
        h.commit(result)
        assert len(slices) <= 4, "fencing did not finish in 3 slices"
    assert [len(s.records) for s in slices] == [MAX_SLICE_RECORDS, MAX_SLICE_RECORDS, 11]
    reg = h.image.broker(1)
    assert reg is not None and reg.fenced
    # Before the last slice the broker was still unfenced, and each slice kept every ISR
    # non-empty; the end state is the same as fencing in one block.
    assert all(
        s.records[-1].WhichOneof("record") != "broker_registration_change" for s in slices[:-1]
    )
    assert slices[-1].response.is_fenced
    for view in h.image.partitions():
        assert 1 not in view.state.isr and view.state.leader != 1
        assert view.state == one_block.partition(view.topic_id, view.partition_id)


def test_session_expiry_fences_in_slices_until_done() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("big", MAX_SLICE_RECORDS + 1, 2)
    h.now_ms += SESSION_TIMEOUT_MS + 1
    h.sessions.touch(2, h.now_ms)
    first = h.cluster.fence_one_expired_broker(h.image, h.now_ms)
    h.commit(first)
    second = h.cluster.fence_one_expired_broker(h.image, h.now_ms)
    h.commit(second)
    assert (first.response, first.more, len(first.records)) == (1, True, MAX_SLICE_RECORDS)
    assert (second.response, second.more, len(second.records)) == (1, False, 2)
    reg = h.image.broker(1)
    assert reg is not None and reg.fenced


def test_a_new_incarnation_registers_after_its_isr_removals() -> None:
    h = Harness()
    h.add_brokers([1, 2])
    h.create_topic("big", MAX_SLICE_RECORDS + 5, 2)
    h.now_ms += SESSION_TIMEOUT_MS + 1
    h.sessions.touch(2, h.now_ms)
    request = _request(incarnation_id="inc-1-new")
    first = h.cluster.register_broker(h.image, request, next_index=h.next_index, now_ms=h.now_ms)
    h.commit(first)
    reg = h.image.broker(1)
    assert first.more and reg is not None and reg.incarnation_id == "inc-1"
    second = h.cluster.register_broker(h.image, request, next_index=h.next_index, now_ms=h.now_ms)
    epoch = h.commit(second).broker_epoch
    reg = h.image.broker(1)
    assert not second.more and reg is not None and reg.incarnation_id == "inc-1-new"
    assert reg.epoch == epoch and reg.fenced
    assert all(1 not in view.state.isr for view in h.image.partitions())


def _heartbeat_slices(
    h: Harness, broker_id: int, *, want_fence: bool = False
) -> list[ControllerResult[BrokerHeartbeatResponse]]:
    """Heartbeats of ``broker_id`` (caught up) planned again after each slice, as
    ActiveController.write does, until one says no more follow."""
    slices: list[ControllerResult[BrokerHeartbeatResponse]] = []
    while not slices or slices[-1].more:
        request = BrokerHeartbeatRequest(
            broker_id=broker_id,
            broker_epoch=h.epoch(broker_id),
            current_metadata_index=h.image.last_applied_index,
            want_fence=want_fence,
        )
        result = h.cluster.heartbeat(h.image, request, next_index=h.next_index, now_ms=h.now_ms)
        slices.append(result)
        h.commit(result)
        assert len(slices) <= 5, "the change did not finish in 4 slices"
    return slices


def _leaderless(h: Harness) -> int:
    return sum(view.state.leader == NO_LEADER for view in h.image.partitions())


def test_unfencing_the_broker_that_can_lead_many_leaderless_partitions_comes_in_slices() -> None:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("big", 2 * MAX_SLICE_RECORDS + 10, 1)
    _heartbeat_slices(h, 1, want_fence=True)
    assert _leaderless(h) == 2 * MAX_SLICE_RECORDS + 10
    slices = _heartbeat_slices(h, 1)
    # The unfence record leads the first slice; every slice stays within the bound.
    assert slices[0].records[0].WhichOneof("record") == "broker_registration_change"
    assert not slices[0].response.is_fenced
    assert [len(s.records) for s in slices] == [MAX_SLICE_RECORDS, MAX_SLICE_RECORDS, 11]
    assert all(view.state.leader == 1 for view in h.image.partitions())
    # Nothing is pending any more: the next heartbeat writes nothing.
    assert not _heartbeat_slices(h, 1)[0].records


def test_a_new_active_controller_elects_what_an_unfinished_unfencing_left_leaderless() -> None:
    h = Harness()
    h.add_brokers([1])
    h.create_topic("big", MAX_SLICE_RECORDS + 5, 1)
    _heartbeat_slices(h, 1, want_fence=True)
    request = BrokerHeartbeatRequest(
        broker_id=1, broker_epoch=h.epoch(1), current_metadata_index=h.image.last_applied_index
    )
    first = h.cluster.heartbeat(h.image, request, next_index=h.next_index, now_ms=h.now_ms)
    h.commit(first)
    assert first.more and _leaderless(h) == 6
    # The controller "fails over" before its next slice: the new one knows nothing of it.
    h.cluster = ClusterManager(CLUSTER_ID, BrokerSessions(SESSION_TIMEOUT_MS, started_ms=0))
    (rest,) = _heartbeat_slices(h, 1)
    assert len(rest.records) == 6 and _leaderless(h) == 0
