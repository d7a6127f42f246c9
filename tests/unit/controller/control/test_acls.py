"""ACL plan functions against a MetadataImage: records, idempotent creation, filtered deletion,
ordering, and replay through snapshots."""

from __future__ import annotations

import random

from raftka.common.metadata.image import MetadataImage
from raftka.common.security.acl_filters import MATCH_ALL, PATTERN_MATCH, AclFilter
from raftka.common.security.model import (
    ALLOW,
    DENY,
    LITERAL,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.controller.control.acls import create_acls, delete_acls, describe_acls
from raftka.controller.control.result import ControllerResult
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import security_pb2 as pb
from raftka.v1.metadata_pb2 import MetadataBatch

ALICE_WRITE = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW)
BOB_READ_PREFIX = Acl(RESOURCE_TOPIC, "ord", PREFIXED, "User:bob", "*", OP_READ, ALLOW)
BOB_DENY = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:bob", "10.0.0.1", OP_READ, DENY)
GROUP_READ = Acl(RESOURCE_GROUP, "billing", LITERAL, "User:bob", "*", OP_READ, ALLOW)


class Controller:
    def __init__(self) -> None:
        self.image = MetadataImage()
        self.rng = random.Random(3)
        self.log: list[MetadataBatch] = []

    def commit(self, result: ControllerResult[object]) -> object:
        self.log.append(result.batch())
        self.image.apply_batch(result.batch(), self.image.last_applied_index + 1)
        return result.response

    def create(self, *acls: Acl) -> tuple[pb.CreateAclsResponse, int]:
        result = create_acls(
            self.image, pb.CreateAclsRequest(creations=[a.to_proto() for a in acls]), self.rng
        )
        self.commit(result)  # type: ignore[arg-type]
        return result.response, len(result.records)

    def delete(self, *filters: AclFilter) -> tuple[pb.DeleteAclsResponse, int]:
        result = delete_acls(
            self.image, pb.DeleteAclsRequest(filters=[f.to_proto() for f in filters])
        )
        self.commit(result)  # type: ignore[arg-type]
        return result.response, len(result.records)

    def describe(self, f: AclFilter = MATCH_ALL) -> list[tuple[str, Acl]]:
        response = describe_acls(self.image, pb.DescribeAclsRequest(filter=f.to_proto()))
        assert response.error_code == cpb.NONE
        return [(d.id, Acl.from_proto(d.binding)) for d in response.acls]


def test_created_acls_get_ids_and_are_described_in_order() -> None:
    c = Controller()
    response, written = c.create(GROUP_READ, ALICE_WRITE, BOB_DENY, BOB_READ_PREFIX)
    assert written == 4
    ids = [r.id for r in response.results]
    assert all(r.error_code == cpb.NONE for r in response.results)
    assert len(set(ids)) == 4 and all(len(i) == 22 for i in ids)
    assert dict(c.image.security.acls) == dict(
        zip(ids, [GROUP_READ, ALICE_WRITE, BOB_DENY, BOB_READ_PREFIX], strict=True)
    )
    # resource type, name, pattern, principal, host, operation
    assert [a for _, a in c.describe()] == [BOB_READ_PREFIX, ALICE_WRITE, BOB_DENY, GROUP_READ]


def test_creating_an_existing_acl_returns_its_id_and_writes_nothing() -> None:
    c = Controller()
    first, _ = c.create(ALICE_WRITE)
    again, written = c.create(ALICE_WRITE)
    assert written == 0
    assert again.results[0].id == first.results[0].id
    # the same ACL twice in one request is written once, both answers carry its id
    twice, written = c.create(BOB_DENY, BOB_DENY)
    assert written == 1
    assert twice.results[0].id == twice.results[1].id
    assert len(c.image.security.acls) == 2


def test_bad_creations_are_refused_one_by_one() -> None:
    c = Controller()
    bad = ALICE_WRITE.to_proto()
    bad.host = "example.com"
    response = create_acls(
        c.image, pb.CreateAclsRequest(creations=[bad, GROUP_READ.to_proto()]), c.rng
    )
    refused, created = response.response.results
    assert refused.error_code == cpb.INVALID_REQUEST and "host" in refused.error_message
    assert not refused.id
    assert created.error_code == cpb.NONE and created.id
    assert len(response.records) == 1


def test_delete_by_filters_reports_each_acl_once() -> None:
    c = Controller()
    c.create(ALICE_WRITE, BOB_DENY, BOB_READ_PREFIX, GROUP_READ)
    response, written = c.delete(
        AclFilter(principal="User:bob", resource_type=RESOURCE_TOPIC),
        AclFilter(resource_type=RESOURCE_TOPIC, resource_name="orders", pattern_type=PATTERN_MATCH),
        AclFilter(principal="User:nobody"),
    )
    by_bob, matching_orders, nothing = response.results
    assert [Acl.from_proto(d.binding) for d in by_bob.deleted] == [BOB_READ_PREFIX, BOB_DENY]
    # ALICE_WRITE remains for the second filter; BOB's were already removed by the first
    assert [Acl.from_proto(d.binding) for d in matching_orders.deleted] == [ALICE_WRITE]
    assert not nothing.deleted and nothing.error_code == cpb.NONE
    assert written == 3
    assert [a for _, a in c.describe()] == [GROUP_READ]


def test_a_refused_filter_deletes_nothing_for_itself() -> None:
    c = Controller()
    c.create(ALICE_WRITE)
    bad = AclFilter().to_proto()
    bad.operation = 99  # type: ignore[assignment]
    result = delete_acls(c.image, pb.DeleteAclsRequest(filters=[bad]))
    assert result.response.results[0].error_code == cpb.INVALID_REQUEST
    assert not result.records


def test_describe_with_a_filter() -> None:
    c = Controller()
    c.create(ALICE_WRITE, BOB_DENY, BOB_READ_PREFIX, GROUP_READ)
    assert [a for _, a in c.describe(AclFilter(resource_type=RESOURCE_GROUP))] == [GROUP_READ]
    match = AclFilter(
        resource_type=RESOURCE_TOPIC, resource_name="orders-eu", pattern_type=PATTERN_MATCH
    )
    assert [a for _, a in c.describe(match)] == [BOB_READ_PREFIX]
    bad = pb.DescribeAclsRequest(filter=AclFilter().to_proto())
    bad.filter.pattern_type = 42  # type: ignore[assignment]
    assert describe_acls(c.image, bad).error_code == cpb.INVALID_REQUEST


def test_acl_records_replay_identically_and_survive_snapshots() -> None:
    c = Controller()
    c.create(ALICE_WRITE, BOB_DENY, BOB_READ_PREFIX, GROUP_READ)
    c.delete(AclFilter(principal="User:alice"))
    # another node replaying the same log, and one loading a snapshot, get the same ACLs
    replayed = MetadataImage()
    assert replayed.security != c.image.security  # equality below is not vacuous
    for index, batch in enumerate(c.log, start=1):
        replayed.apply_batch(MetadataBatch.FromString(batch.SerializeToString()), index)
    assert replayed.security == c.image.security
    loaded = MetadataImage.from_snapshot(c.image.to_snapshot(last_term=1))
    assert loaded.security == c.image.security
    assert c.describe() == [
        (d.id, Acl.from_proto(d.binding))
        for d in describe_acls(loaded, pb.DescribeAclsRequest()).acls
    ]
    assert [a for _, a in c.describe()] == [BOB_READ_PREFIX, BOB_DENY, GROUP_READ]
