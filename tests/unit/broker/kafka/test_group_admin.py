"""ListGroups, DescribeGroups, DeleteGroups and OffsetDelete over the Kafka listener, on a real
shard: Kafka's names for types and states, members' assignments in Kafka's consumer protocol
bytes, per-group and per-partition errors, and the ACL checks."""

from __future__ import annotations

from typing import Any

from kio.schema.consumer_protocol_assignment.v0.data import ConsumerProtocolAssignment
from kio.schema.consumer_protocol_subscription.v0.data import ConsumerProtocolSubscription
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from raftka.broker.kafka.dispatch import Handler
from raftka.broker.kafka.group_admin import (
    DELETE_GROUPS_KEY,
    DESCRIBE_GROUPS_KEY,
    LIST_GROUPS_KEY,
    OFFSET_DELETE_KEY,
    DeleteGroupsHandler,
    DescribeGroupsHandler,
    ListGroupsHandler,
    OffsetDeleteHandler,
)
from raftka.broker.kafka.schema import nested, request_type
from raftka.common.security.model import OP_DESCRIBE, RESOURCE_GROUP
from tests.unit.broker.groups.support import ShardHarness
from tests.unit.broker.kafka.support import (
    ALICE,
    as_alice,
    call,
    denying_guard,
    group_backend,
)


class Admin:
    """A shard with a consumer group "live" (one member on topic t) and a simple group
    "plain" (offsets on t-0 and u-0)."""

    def __init__(self, **guard: Any) -> None:
        self.harness = ShardHarness({"t": 2, "u": 1})
        self.member = self.harness.join("live", ("t",), member_id="m-1")
        self.harness.commit("plain", "", -1, {("t", 0): 3, ("u", 0): 4})
        backend, _ = group_backend(self.harness, **guard)
        self.handlers: dict[int, Handler] = {
            LIST_GROUPS_KEY: ListGroupsHandler(backend),
            DESCRIBE_GROUPS_KEY: DescribeGroupsHandler(backend),
            DELETE_GROUPS_KEY: DeleteGroupsHandler(backend),
            OFFSET_DELETE_KEY: OffsetDeleteHandler(backend),
        }

    def ask(self, api_key: int, version: int, **values: Any) -> Any:
        entity = request_type(api_key, version)(**values)
        return as_alice(call(self.handlers[api_key], api_key, version, entity))


def decoded(kind: type[Any], raw: bytes) -> Any:
    """Kafka's consumer protocol bytes: a version (0 here), then the entity."""
    assert raw[:2] == b"\x00\x00"
    entity, size = entity_reader(kind)(raw, 2)
    assert size == len(raw) - 2, "nothing left over"
    return entity


def test_list_groups_names_types_and_states_as_kafka_does() -> None:
    admin = Admin()
    listed = admin.ask(LIST_GROUPS_KEY, 5)
    shown = {g.group_id: (g.group_type, g.protocol_type, g.group_state) for g in listed.groups}
    assert shown == {"live": ("consumer", "consumer", "Stable"), "plain": ("classic", "", "Empty")}
    only_stable = admin.ask(LIST_GROUPS_KEY, 5, states_filter=("STABLE",))
    assert [g.group_id for g in only_stable.groups] == ["live"]
    only_classic = admin.ask(LIST_GROUPS_KEY, 5, types_filter=("Classic",))
    assert [g.group_id for g in only_classic.groups] == ["plain"]
    v0 = admin.ask(LIST_GROUPS_KEY, 0)
    assert v0.error_code == ErrorCode.none and len(v0.groups) == 2


def test_describe_groups_shows_members_in_the_consumer_protocol() -> None:
    admin = Admin()
    answer = admin.ask(
        DESCRIBE_GROUPS_KEY,
        5,
        groups=("live", "plain", "nope"),
        include_authorized_operations=False,
    )
    live, plain, nope = answer.groups
    assert (live.error_code, live.group_state, live.protocol_type, live.protocol_data) == (
        ErrorCode.none,
        "Stable",
        "consumer",
        "uniform",
    )
    (member,) = live.members
    assert member.member_id == "m-1"
    assignment = decoded(ConsumerProtocolAssignment, member.member_assignment)
    assert [(tp.topic, tp.partitions) for tp in assignment.assigned_partitions] == [("t", (0, 1))]
    assert decoded(ConsumerProtocolSubscription, member.member_metadata).topics == ("t",)
    assert (plain.group_state, plain.protocol_type, plain.members) == ("Empty", "", ())
    assert (nope.error_code, nope.group_state) == (ErrorCode.none, "Dead")
    v6 = admin.ask(DESCRIBE_GROUPS_KEY, 6, groups=("nope", ""), include_authorized_operations=False)
    assert [g.error_code for g in v6.groups] == [
        ErrorCode.group_id_not_found,
        ErrorCode.invalid_group_id,
    ]


def test_delete_groups_refuses_a_group_with_members() -> None:
    admin = Admin()
    answer = admin.ask(DELETE_GROUPS_KEY, 2, groups_names=("live", "plain", "plain", "nope"))
    assert {r.group_id: r.error_code for r in answer.results} == {
        "live": ErrorCode.non_empty_group,
        "plain": ErrorCode.none,
        "nope": ErrorCode.group_id_not_found,
    }
    assert len(answer.results) == 3, "one result per distinct group"
    assert admin.harness.fetch("plain").topics == []


def offset_delete(admin: Admin, group: str, topics: dict[str, tuple[int, ...]]) -> Any:
    kind = request_type(OFFSET_DELETE_KEY, 0)
    topic_type = nested(kind, "OffsetDeleteRequestTopic")
    partition_type = nested(kind, "OffsetDeleteRequestPartition")
    return admin.ask(
        OFFSET_DELETE_KEY,
        0,
        group_id=group,
        topics=tuple(
            topic_type(name=t, partitions=tuple(partition_type(partition_index=p) for p in ps))
            for t, ps in topics.items()
        ),
    )


def test_offset_delete_per_partition_and_group() -> None:
    admin = Admin()
    answer = offset_delete(admin, "plain", {"t": (0, 1)})
    assert answer.error_code == ErrorCode.none
    assert [(p.partition_index, p.error_code) for p in answer.topics[0].partitions] == [
        (0, ErrorCode.none),
        (1, ErrorCode.none),
    ]
    left = {
        (t.name, p.partition) for t in admin.harness.fetch("plain").topics for p in t.partitions
    }
    assert left == {("u", 0)}
    subscribed = offset_delete(admin, "live", {"t": (0,)})
    assert subscribed.topics[0].partitions[0].error_code == ErrorCode.group_subscribed_to_topic
    missing = offset_delete(admin, "nope", {"t": (0,)})
    assert (missing.error_code, missing.topics) == (ErrorCode.group_id_not_found, ())


def test_admin_needs_describe_to_look_and_delete_to_delete() -> None:
    admin = Admin(guard=denying_guard({(ALICE, OP_DESCRIBE, RESOURCE_GROUP, "live")}))
    assert [g.group_id for g in admin.ask(LIST_GROUPS_KEY, 5).groups] == ["live"]
    described = admin.ask(
        DESCRIBE_GROUPS_KEY, 5, groups=("live", "plain"), include_authorized_operations=False
    )
    assert [g.error_code for g in described.groups] == [
        ErrorCode.none,
        ErrorCode.group_authorization_failed,
    ]
    deleted = admin.ask(DELETE_GROUPS_KEY, 2, groups_names=("plain",))
    assert deleted.results[0].error_code == ErrorCode.group_authorization_failed
    refused = offset_delete(admin, "plain", {"t": (0,)})
    assert refused.error_code == ErrorCode.group_authorization_failed
    assert admin.harness.fetch("plain").topics, "nothing was deleted"
