"""ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) over the Kafka listener, on a real
shard: a member joins and gets its assignment by topic id, reports what it owns by topic id,
refusals and coordinator errors come back as the answer's error code, READ on the group is
checked for heartbeats and DESCRIBE for descriptions."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.consumer_group import (
    CONSUMER_GROUP_DESCRIBE_KEY,
    CONSUMER_GROUP_HEARTBEAT_KEY,
    ConsumerGroupDescribeHandler,
    ConsumerGroupHeartbeatHandler,
)
from raftka.broker.kafka.schema import nested, request_type, topic_uuid
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.security.model import OP_READ, RESOURCE_GROUP
from tests.unit.broker.groups.support import ShardHarness
from tests.unit.broker.kafka.support import (
    ALICE,
    FakeImage,
    as_alice,
    call,
    denying_guard,
    group_backend,
)

VERSION = 1


def heartbeat(
    handler: ConsumerGroupHeartbeatHandler,
    *,
    member_id: str,
    member_epoch: int,
    topics: tuple[str, ...] | None = None,
    owned: dict[uuid.UUID, tuple[int, ...]] | None = None,
    group_id: str = "g",
) -> Any:
    kind = request_type(CONSUMER_GROUP_HEARTBEAT_KEY, VERSION)
    owned_type = nested(kind, "TopicPartitions")
    entity = kind(
        group_id=group_id,
        member_id=member_id,
        member_epoch=member_epoch,
        rebalance_timeout=datetime.timedelta(milliseconds=30_000 if member_epoch == 0 else -1),
        subscribed_topic_names=topics,
        topic_partitions=None
        if owned is None
        else tuple(owned_type(topic_id=t, partitions=ps) for t, ps in owned.items()),
    )
    return as_alice(call(handler, CONSUMER_GROUP_HEARTBEAT_KEY, VERSION, entity))


def setup(**guard: Any) -> tuple[ConsumerGroupHeartbeatHandler, FakeImage, Any]:
    harness = ShardHarness({"t": 3, "u": 1})
    image = FakeImage().with_topics("t", "u")
    backend, coordinator = group_backend(harness, image=image, **guard)
    return ConsumerGroupHeartbeatHandler(backend), image, coordinator


def test_a_member_joins_gets_its_partitions_by_topic_id_and_acknowledges_them() -> None:
    handler, image, _ = setup()
    member = str(uuid.uuid4())
    joined = heartbeat(handler, member_id=member, member_epoch=0, topics=("t",))
    assert joined.error_code == ErrorCode.none, joined.error_message
    assert joined.member_id == member and joined.member_epoch >= 1
    assert joined.heartbeat_interval > datetime.timedelta(0)
    t_id = topic_uuid(image.topics["t"].topic_id)
    assert {(a.topic_id, a.partitions) for a in joined.assignment.topic_partitions} == {
        (t_id, (0, 1, 2))
    }
    steady = heartbeat(
        handler, member_id=member, member_epoch=joined.member_epoch, owned={t_id: (0, 1, 2)}
    )
    assert steady.error_code == ErrorCode.none
    assert steady.member_epoch == joined.member_epoch
    left = heartbeat(handler, member_id=member, member_epoch=-1)
    assert left.error_code == ErrorCode.none and left.member_epoch == -1


def test_owned_partitions_of_an_unknown_topic_id_are_left_out() -> None:
    handler, image, _ = setup()
    member = str(uuid.uuid4())
    joined = heartbeat(handler, member_id=member, member_epoch=0, topics=("t",))
    t_id = topic_uuid(image.topics["t"].topic_id)
    answer = heartbeat(
        handler,
        member_id=member,
        member_epoch=joined.member_epoch,
        owned={t_id: (0, 1, 2), uuid.uuid4(): (0,)},
    )
    assert answer.error_code == ErrorCode.none


def test_refusals_and_coordinator_errors_are_the_answer_error_code() -> None:
    handler, _, coordinator = setup()
    stranger = heartbeat(handler, member_id="nobody", member_epoch=4)
    assert stranger.error_code == ErrorCode.unknown_member_id
    bad_group = heartbeat(handler, member_id="m", member_epoch=0, topics=("t",), group_id="")
    assert bad_group.error_code == ErrorCode.invalid_group_id
    coordinator.error = NotCoordinatorError("moved")
    moved = heartbeat(handler, member_id="m", member_epoch=0, topics=("t",))
    assert moved.error_code == ErrorCode.not_coordinator and moved.error_message == "moved"
    assert moved.assignment is None


def test_joining_needs_read_on_the_group() -> None:
    handler, _, _ = setup(guard=denying_guard({(ALICE, OP_READ, RESOURCE_GROUP, "billing")}))
    refused = heartbeat(handler, member_id="m", member_epoch=0, topics=("t",))
    assert refused.error_code == ErrorCode.group_authorization_failed
    allowed = heartbeat(handler, member_id="m", member_epoch=0, topics=("t",), group_id="billing")
    assert allowed.error_code == ErrorCode.none


def test_a_member_on_plain_heartbeats_hears_of_a_revocation_and_the_newcomer_of_its_share() -> None:
    """Kafka's members send no owned partitions while nothing changed, and have no stream for
    the coordinator's pushes: the revocation a join causes comes in their next answer."""
    handler, image, _ = setup()
    t_id = topic_uuid(image.topics["t"].topic_id)
    first = heartbeat(handler, member_id="a", member_epoch=0, topics=("t",))
    heartbeat(handler, member_id="a", member_epoch=first.member_epoch, owned={t_id: (0, 1, 2)})
    second = heartbeat(handler, member_id="b", member_epoch=0, topics=("t",))
    assert second.assignment is not None and second.assignment.topic_partitions == ()
    told = heartbeat(handler, member_id="a", member_epoch=first.member_epoch)
    assert told.assignment is not None, "the shrunk assignment is in the plain heartbeat's answer"
    (kept,) = told.assignment.topic_partitions
    assert len(kept.partitions) == 2
    released = heartbeat(
        handler, member_id="a", member_epoch=told.member_epoch, owned={t_id: kept.partitions}
    )
    assert released.error_code == ErrorCode.none
    newcomer = heartbeat(handler, member_id="b", member_epoch=second.member_epoch)
    assert newcomer.assignment is not None
    (share,) = newcomer.assignment.topic_partitions
    assert set(share.partitions) == {0, 1, 2} - set(kept.partitions)


def describe(handler: ConsumerGroupDescribeHandler, version: int, *groups: str) -> Any:
    entity = request_type(CONSUMER_GROUP_DESCRIBE_KEY, version)(
        group_ids=groups, include_authorized_operations=False
    )
    return as_alice(call(handler, CONSUMER_GROUP_DESCRIBE_KEY, version, entity))


def test_consumer_group_describe_shows_epochs_and_assignments_by_id_and_name() -> None:
    harness = ShardHarness({"t": 2})
    image = FakeImage().with_topics("t")
    harness.join("live", ("t",), member_id="m-1")
    harness.commit("plain", "", -1, {("t", 0): 3})
    backend, _ = group_backend(harness, image=image)
    handler = ConsumerGroupDescribeHandler(backend)
    live, plain, missing = describe(handler, 1, "live", "plain", "nope").groups
    assert (live.error_code, live.group_state, live.assignor_name) == (
        ErrorCode.none,
        "Stable",
        "uniform",
    )
    assert live.group_epoch >= 1 and live.assignment_epoch == live.group_epoch
    (member,) = live.members
    assert (member.member_id, member.subscribed_topic_names, member.member_type) == (
        "m-1",
        ("t",),
        1,
    )
    t_id = topic_uuid(image.topics["t"].topic_id)
    for assignment in (member.assignment, member.target_assignment):
        assert [
            (tp.topic_id, tp.topic_name, tp.partitions) for tp in assignment.topic_partitions
        ] == [(t_id, "t", (0, 1))]
    assert plain.error_code == ErrorCode.group_id_not_found, "offsets only: not a consumer group"
    assert missing.error_code == ErrorCode.group_id_not_found


def test_consumer_group_describe_needs_describe_on_the_group() -> None:
    harness = ShardHarness({"t": 2})
    harness.join("live", ("t",), member_id="m-1")
    backend, _ = group_backend(harness, image=FakeImage().with_topics("t"), guard=denying_guard())
    (refused,) = describe(ConsumerGroupDescribeHandler(backend), 0, "live").groups
    assert refused.error_code == ErrorCode.group_authorization_failed
    assert refused.members == ()
