"""JoinGroup / SyncGroup / Heartbeat / LeaveGroup over the Kafka listener: the adapters against
a real group shard, version by version, and the consumer protocol's blobs."""

from __future__ import annotations

import asyncio
import datetime
import io
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest
from kio.schema.consumer_protocol_assignment.v0.data import ConsumerProtocolAssignment
from kio.schema.consumer_protocol_subscription.v0.data import (
    ConsumerProtocolSubscription as SubscriptionV0,
)
from kio.schema.consumer_protocol_subscription.v3.data import (
    ConsumerProtocolSubscription as SubscriptionV3,
)
from kio.schema.consumer_protocol_subscription.v3.data import TopicPartition
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from raftka.broker.groups.api import GroupConfig, GroupShard, Outcome, TopicsView
from raftka.broker.groups.shard import ConsumerGroupShard
from raftka.broker.kafka.classic_group import (
    HEARTBEAT_KEY,
    JOIN_GROUP_KEY,
    LEAVE_GROUP_KEY,
    SYNC_GROUP_KEY,
    HeartbeatHandler,
    JoinGroupHandler,
    LeaveGroupHandler,
    SyncGroupHandler,
)
from raftka.broker.kafka.consumer_protocol import (
    SubscriptionError,
    decode_subscription,
    encode_assignment,
)
from raftka.broker.kafka.dispatch import Handler
from raftka.broker.kafka.schema import nested, request_type
from raftka.common.group_errors import NotCoordinatorError
from raftka.common.security.model import OP_READ, RESOURCE_GROUP
from tests.unit.broker.kafka.support import (
    ALICE,
    as_alice,
    backend,
    call,
    denying_guard,
    request,
)

SECOND = datetime.timedelta(seconds=1)


@dataclass
class ShardCoordinator:
    """The runtime's ``write`` over one real shard (no log: records are applied already)."""

    shard: ConsumerGroupShard = field(
        default_factory=lambda: ConsumerGroupShard(0, GroupConfig(), new_member_id=lambda: "m1")
    )
    now_ms: int = 1_000_000
    down: bool = False

    async def write(self, key: str, call: Any) -> Any:
        if self.down:
            raise NotCoordinatorError(f"group {key!r} is not coordinated here")
        shard: GroupShard = self.shard
        outcome: Outcome[Any] = call(shard, self.now_ms)
        return outcome.response


@dataclass
class OffsetsTopic:
    counts: dict[str, int] = field(default_factory=lambda: {"t": 3})

    def topics(self) -> TopicsView:
        return self.counts


def subscription(
    topics: tuple[str, ...], version: int = 3, owned: dict[str, list[int]] | None = None
) -> bytes:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">h", version))
    if version == 0:
        entity_writer(SubscriptionV0)(buffer, SubscriptionV0(topics=topics, user_data=None))
    else:
        entity_writer(SubscriptionV3)(
            buffer,
            SubscriptionV3(
                topics=topics,
                user_data=None,
                owned_partitions=tuple(
                    TopicPartition(topic=t, partitions=tuple(i32(p) for p in ps))  # type: ignore[arg-type]
                    for t, ps in (owned or {}).items()
                ),
                generation_id=i32(-1),
                rack_id="r1",
            ),
        )
    return buffer.getvalue()


def handlers(**parts: Any) -> dict[int, Handler]:
    parts.setdefault("groups", ShardCoordinator())
    parts.setdefault("offsets_topic", OffsetsTopic())
    b = backend(**parts)
    return {
        JOIN_GROUP_KEY: JoinGroupHandler(b),
        SYNC_GROUP_KEY: SyncGroupHandler(b),
        HEARTBEAT_KEY: HeartbeatHandler(b),
        LEAVE_GROUP_KEY: LeaveGroupHandler(b),
    }


def serve(apis: dict[int, Handler], key: int, version: int, **values: Any) -> Any:
    return asyncio.run(call(apis[key], key, version, request(key, version, **values)))


def join_values(version: int, member_id: str = "", **more: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "group_id": "g",
        "session_timeout": 10 * SECOND,
        "member_id": member_id,
        "protocol_type": "consumer",
        "protocols": (),
    }
    if version >= 1:
        values["rebalance_timeout"] = 30 * SECOND
    if version >= 5:
        values["group_instance_id"] = None
    values.update(more)
    return values


def join(
    apis: dict[int, Handler], version: int, member_id: str = "", blob: bytes | None = None
) -> Any:
    protocol_type = nested(request_type(JOIN_GROUP_KEY, version), "JoinGroupRequestProtocol")
    protocols = (
        protocol_type(name="range", metadata=blob if blob is not None else subscription(("t",))),
        protocol_type(name="roundrobin", metadata=b"ignored"),
    )
    return serve(
        apis, JOIN_GROUP_KEY, version, **join_values(version, member_id, protocols=protocols)
    )


def assigned(blob: bytes) -> dict[str, set[int]]:
    assert struct.unpack_from(">h", blob)[0] == 0
    entity, _ = entity_reader(ConsumerProtocolAssignment)(blob, 2)
    return {t.topic: {int(p) for p in t.partitions} for t in entity.assigned_partitions}


@pytest.mark.parametrize(
    ("join_v", "sync_v", "beat_v", "leave_v"), [(0, 0, 0, 0), (5, 3, 3, 3), (9, 5, 4, 5)]
)
def test_a_member_joins_syncs_heartbeats_and_leaves(
    join_v: int, sync_v: int, beat_v: int, leave_v: int
) -> None:
    apis = handlers()
    answer = join(apis, join_v)
    if join_v >= 4:
        assert (answer.error_code, answer.member_id) == (ErrorCode.member_id_required, "m1")
        answer = join(apis, join_v, "m1")
    assert answer.error_code == ErrorCode.none
    assert (answer.member_id, answer.generation_id, answer.protocol_name) == ("m1", 1, "range")
    assert (answer.leader, answer.members) == ("", ())  # a follower: no client-side assignor
    sync = {"group_id": "g", "generation_id": i32(1), "member_id": "m1", "assignments": ()}
    if sync_v >= 3:
        sync["group_instance_id"] = None
    if sync_v >= 5:
        sync.update(protocol_type="consumer", protocol_name="range")
    synced = serve(apis, SYNC_GROUP_KEY, sync_v, **sync)
    assert synced.error_code == ErrorCode.none
    assert assigned(synced.assignment) == {"t": {0, 1, 2}}
    beat = {"group_id": "g", "generation_id": i32(1), "member_id": "m1"}
    if beat_v >= 3:
        beat["group_instance_id"] = None
    assert serve(apis, HEARTBEAT_KEY, beat_v, **beat).error_code == ErrorCode.none
    stale = serve(apis, HEARTBEAT_KEY, beat_v, **{**beat, "generation_id": i32(5)})
    assert stale.error_code == ErrorCode.illegal_generation
    if leave_v >= 3:
        identity = nested(request_type(LEAVE_GROUP_KEY, leave_v), "MemberIdentity")
        left = serve(
            apis,
            LEAVE_GROUP_KEY,
            leave_v,
            group_id="g",
            members=(
                identity(member_id="m1", group_instance_id=None),
                identity(member_id="x", group_instance_id=None),
            ),
        )
        assert left.error_code == ErrorCode.none
        assert [(m.member_id, m.error_code) for m in left.members] == [
            ("m1", ErrorCode.none),
            ("x", ErrorCode.unknown_member_id),
        ]
    else:
        left = serve(apis, LEAVE_GROUP_KEY, leave_v, group_id="g", member_id="m1")
        assert left.error_code == ErrorCode.none
    assert serve(apis, HEARTBEAT_KEY, beat_v, **beat).error_code == ErrorCode.unknown_member_id


def test_bad_input_gets_kafkas_codes() -> None:
    apis = handlers()
    assert join(apis, 3, blob=b"\x00").error_code == ErrorCode.inconsistent_group_protocol
    assert join(apis, 3, blob=b"\x00\x03\x00").error_code == ErrorCode.inconsistent_group_protocol
    too_long = serve(apis, JOIN_GROUP_KEY, 3, **join_values(3, group_id="g" * 250))
    assert too_long.error_code == ErrorCode.invalid_group_id
    unknown = serve(
        apis,
        SYNC_GROUP_KEY,
        1,
        group_id="g",
        generation_id=i32(1),
        member_id="nobody",
        assignments=(),
    )
    assert (unknown.error_code, unknown.assignment) == (ErrorCode.unknown_member_id, b"")


def test_coordinator_errors_are_answered_not_raised() -> None:
    apis = handlers(groups=ShardCoordinator(down=True))
    assert join(apis, 3).error_code == ErrorCode.not_coordinator
    beat = serve(apis, HEARTBEAT_KEY, 1, group_id="g", generation_id=i32(1), member_id="m1")
    assert beat.error_code == ErrorCode.not_coordinator
    left = serve(apis, LEAVE_GROUP_KEY, 1, group_id="g", member_id="m1")
    assert left.error_code == ErrorCode.not_coordinator
    none = handlers(groups=None)
    assert join(none, 3).error_code == ErrorCode.coordinator_not_available


def test_read_on_the_group_is_checked() -> None:
    coordinator = ShardCoordinator()
    apis = handlers(
        groups=coordinator, guard=denying_guard({(ALICE, OP_READ, RESOURCE_GROUP, "other")})
    )
    entity = request(JOIN_GROUP_KEY, 3, **join_values(3))
    answer = as_alice(call(apis[JOIN_GROUP_KEY], JOIN_GROUP_KEY, 3, entity))
    assert answer.error_code == ErrorCode.group_authorization_failed
    assert coordinator.shard.group_ids() == []
    for key, version, values in (
        (SYNC_GROUP_KEY, 1, {"generation_id": i32(1), "assignments": ()}),
        (HEARTBEAT_KEY, 1, {"generation_id": i32(1)}),
        (LEAVE_GROUP_KEY, 1, {}),
    ):
        entity = request(key, version, group_id="g", member_id="m1", **values)
        answer = as_alice(call(apis[key], key, version, entity))
        assert answer.error_code == ErrorCode.group_authorization_failed


def test_subscriptions_of_every_version_decode() -> None:
    v0 = decode_subscription(subscription(("a", "b"), version=0))
    assert (v0.topics, v0.owned, v0.rack_id) == (("a", "b"), None, None)
    v3 = decode_subscription(subscription(("a",), owned={"a": [2, 0]}))
    assert (v3.topics, v3.owned, v3.rack_id) == (("a",), {"a": frozenset({0, 2})}, "r1")
    # A newer version than kio knows is read as the newest known one.
    newer = subscription(("a",), owned={"a": [1]})
    v9 = decode_subscription(struct.pack(">h", 9) + newer[2:] + b"more fields")
    assert (v9.version, v9.owned) == (9, {"a": frozenset({1})})
    for bad in (b"", b"\xff\xff", b"\x00\x01\x00\x05ab"):
        with pytest.raises(SubscriptionError):
            decode_subscription(bad)


def test_an_assignment_round_trips() -> None:
    blob = encode_assignment({"a": frozenset({2, 0}), "b": frozenset()})
    assert assigned(blob) == {"a": {0, 2}}
    assert assigned(encode_assignment({})) == {}
