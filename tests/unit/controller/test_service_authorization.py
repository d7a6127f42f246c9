"""The ControllerService's authorization, without a server: WatchMetadata gives a client (not
a node) no ACL, credential or quota records, and admin RPCs refuse per topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar, cast

import pytest

from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import OP_DESCRIBE, RESOURCE_CLUSTER
from raftka.common.security_errors import ClusterAuthorizationFailedError
from raftka.controller.metadata_visibility import without_security_records
from raftka.controller.service import ControllerServicer
from raftka.v1 import controller_pb2 as pb
from raftka.v1 import metadata_pb2 as mpb
from raftka.v1.common_pb2 import AclBinding, ErrorCode
from tests.unit.common.security.fakes import NODE, FakeAuthorizer, caller

_T = TypeVar("_T")
ALICE = "User:alice"
GUARD = AccessGuard(FakeAuthorizer({(ALICE, OP_DESCRIBE, RESOURCE_CLUSTER, "kafka-cluster")}))

TOPIC = mpb.MetadataRecord(topic=mpb.TopicRecord(name="orders", topic_id="x"))
ACL = mpb.MetadataRecord(
    access_control_entry=mpb.AccessControlEntryRecord(id="a1", binding=AclBinding(principal=ALICE))
)
CREDENTIAL = mpb.MetadataRecord(
    user_scram_credential=mpb.UserScramCredentialRecord(name="alice", salt=b"s", stored_key=b"k")
)
EVENTS = [
    pb.MetadataEvent(
        snapshot=pb.SnapshotChunk(last_index=4, records=[TOPIC, ACL], first=True, last=True)
    ),
    pb.MetadataEvent(delta=pb.MetadataDelta(index=5, records=[CREDENTIAL, TOPIC])),
    pb.MetadataEvent(progress=pb.Progress(commit_index=5)),
]


class State:
    async def watch(self, after_index: int) -> AsyncIterator[pb.MetadataEvent]:
        for event in EVENTS:
            yield event


class Context:
    async def abort(self, code: Any, message: str) -> None:
        raise ClusterAuthorizationFailedError(message)

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailing = metadata


def servicer() -> ControllerServicer:
    unused = cast(Any, object())
    return ControllerServicer(
        cluster_id="c",
        runtime=unused,
        active=unused,
        state=cast(Any, State()),
        sessions=unused,
        addresses={},
        tick_s=0.1,
        guard=GUARD,
    )


def as_(who: str, coro: Coroutine[Any, Any, _T]) -> _T:
    async def bound() -> _T:
        token = bind_caller(caller(who))
        try:
            return await coro
        finally:
            reset_caller(token)

    return asyncio.run(asyncio.wait_for(bound(), 10))


async def watched(s: ControllerServicer) -> list[pb.MetadataEvent]:
    return [e async for e in s.WatchMetadata(pb.WatchMetadataRequest(), cast(Any, Context()))]


def kinds(events: list[pb.MetadataEvent]) -> list[list[str]]:
    out = []
    for e in events:
        body = e.delta if e.HasField("delta") else e.snapshot if e.HasField("snapshot") else None
        out.append([str(r.WhichOneof("record")) for r in body.records] if body else [])
    return out


def test_a_client_watching_metadata_gets_no_security_records() -> None:
    events = as_(ALICE, watched(servicer()))
    assert kinds(events) == [["topic"], ["topic"], []]
    assert events[1].delta.index == 5 and events[0].snapshot.last
    # The shared events were not changed for the other watchers.
    assert len(EVENTS[0].snapshot.records) == 2


def test_a_node_watching_metadata_gets_everything() -> None:
    events = as_(NODE, watched(servicer()))
    assert kinds(events) == [
        ["topic", "access_control_entry"],
        ["user_scram_credential", "topic"],
        [],
    ]


def test_watching_metadata_needs_describe_on_the_cluster() -> None:
    with pytest.raises(ClusterAuthorizationFailedError, match="DESCRIBE"):
        as_("User:mallory", watched(servicer()))


def test_unchanged_events_are_passed_on_as_they_are() -> None:
    plain = pb.MetadataEvent(delta=pb.MetadataDelta(index=1, records=[TOPIC]))
    assert without_security_records(plain) is plain


def test_deleting_a_topic_without_delete_is_refused_and_writes_nothing() -> None:
    delete = ControllerServicer.DeleteTopics.__wrapped__  # type: ignore[attr-defined]
    answer = as_(ALICE, delete(servicer(), pb.DeleteTopicsRequest(names=["orders"]), None))
    assert [(r.name, r.error_code) for r in answer.results] == [
        ("orders", ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    ]
    describe = ControllerServicer.DescribeQuorum.__wrapped__  # type: ignore[attr-defined]
    with pytest.raises(ClusterAuthorizationFailedError):
        as_("User:mallory", describe(servicer(), pb.DescribeQuorumRequest(), None))
