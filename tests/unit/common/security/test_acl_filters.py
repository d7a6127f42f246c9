"""ACL validation for creation, and filter matching (Kafka's AclBindingFilter semantics)."""

from __future__ import annotations

import pytest

from raftka.common.errors import InvalidRequestError
from raftka.common.security.acl_filters import (
    MATCH_ALL,
    OP_ANY,
    PATTERN_ANY,
    PATTERN_MATCH,
    PERMISSION_ANY,
    RESOURCE_ANY,
    AclFilter,
    operation_name,
    parse_enum,
    validate_acl,
)
from raftka.common.security.model import (
    ALLOW,
    DENY,
    LITERAL,
    OP_CLUSTER_ACTION,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.v1.common_pb2 import AclBinding, AclBindingFilter, AclOperation

GOOD = AclBinding(
    resource_type=RESOURCE_TOPIC,
    resource_name="orders",
    pattern_type=LITERAL,
    principal="User:alice",
    host="*",
    operation=OP_WRITE,
    permission_type=ALLOW,
)


def with_(**fields: object) -> AclBinding:
    b = AclBinding()
    b.CopyFrom(GOOD)
    for name, value in fields.items():
        setattr(b, name, value)
    return b


def test_a_good_binding_becomes_an_acl() -> None:
    assert validate_acl(GOOD) == Acl(
        RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW
    )
    assert validate_acl(with_(host="10.1.2.3", principal="User:*", pattern_type=PREFIXED))
    assert validate_acl(with_(host="::1"))
    assert validate_acl(with_(resource_name="*"))
    assert validate_acl(
        with_(
            resource_type=RESOURCE_CLUSTER,
            resource_name="kafka-cluster",
            operation=OP_CLUSTER_ACTION,
        )
    )


@pytest.mark.parametrize(
    "fields,field_named",
    [
        ({"resource_type": 0}, "resource_type"),
        ({"resource_type": 1}, "resource_type"),  # ANY: filters only
        ({"pattern_type": 0}, "pattern_type"),
        ({"pattern_type": 1}, "pattern_type"),
        ({"pattern_type": 2}, "pattern_type"),  # MATCH: filters only
        ({"operation": 0}, "operation"),
        ({"operation": 1}, "operation"),
        ({"permission_type": 1}, "permission_type"),
        ({"permission_type": 0}, "permission_type"),
        ({"resource_name": ""}, "resource_name"),
        ({"principal": ""}, "principal"),
        ({"principal": "alice"}, "principal"),
        ({"principal": "Group:ops"}, "principal"),
        ({"principal": "User:"}, "principal"),
        ({"host": ""}, "host"),
        ({"host": "broker-1.example.com"}, "host"),
        ({"resource_type": RESOURCE_CLUSTER, "resource_name": "orders"}, "kafka-cluster"),
        ({"resource_type": RESOURCE_CLUSTER, "resource_name": "kafka-cluster", "pattern_type": PREFIXED}, "kafka-cluster"),
        ({"resource_name": "*", "pattern_type": PREFIXED}, "PREFIXED"),
        ({"resource_name": "a\nb"}, "resource_name"),
        ({"resource_name": "x" * 1001}, "resource_name"),
    ],
)  # fmt: skip
def test_bad_bindings_are_refused_naming_the_field(
    fields: dict[str, object], field_named: str
) -> None:
    with pytest.raises(InvalidRequestError, match=field_named):
        validate_acl(with_(**fields))


def test_unknown_enum_number_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="operation"):
        validate_acl(with_(operation=99))
    with pytest.raises(InvalidRequestError, match="operation"):
        AclFilter.from_proto(AclBindingFilter(operation=99))  # type: ignore[arg-type]


ACLS = {
    "lit": Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW),
    "star": Acl(RESOURCE_TOPIC, "*", LITERAL, "User:*", "*", OP_READ, ALLOW),
    "pre": Acl(RESOURCE_TOPIC, "ord", PREFIXED, "User:bob", "10.0.0.1", OP_READ, DENY),
    "pre-orders": Acl(RESOURCE_TOPIC, "orders", PREFIXED, "User:bob", "*", OP_READ, ALLOW),
    "longer": Acl(RESOURCE_TOPIC, "orders-eu", PREFIXED, "User:bob", "*", OP_READ, ALLOW),
    "group": Acl(RESOURCE_GROUP, "orders", LITERAL, "User:alice", "*", OP_READ, ALLOW),
}


def selected(f: AclFilter) -> set[str]:
    return {k for k, a in ACLS.items() if f.matches(a)}


@pytest.mark.parametrize(
    "f,expected",
    [
        (MATCH_ALL, set(ACLS)),
        (AclFilter.from_proto(AclBindingFilter()), set(ACLS)),  # the default message: all
        (AclFilter(resource_type=RESOURCE_GROUP), {"group"}),
        # ANY with a name: that exact name, any pattern type
        (AclFilter(resource_name="orders"), {"lit", "pre-orders", "group"}),
        (AclFilter(resource_type=RESOURCE_TOPIC, resource_name="orders"), {"lit", "pre-orders"}),
        # LITERAL / PREFIXED: that pattern type and exact name
        (AclFilter(resource_type=RESOURCE_TOPIC, resource_name="orders", pattern_type=LITERAL), {"lit"}),
        (AclFilter(resource_name="ord", pattern_type=PREFIXED), {"pre"}),
        (AclFilter(pattern_type=PREFIXED), {"pre", "pre-orders", "longer"}),
        # MATCH: what applies to a resource of that name
        (AclFilter(resource_type=RESOURCE_TOPIC, resource_name="orders", pattern_type=PATTERN_MATCH), {"lit", "star", "pre", "pre-orders"}),
        (AclFilter(resource_type=RESOURCE_TOPIC, resource_name="orders-eu-1", pattern_type=PATTERN_MATCH), {"star", "pre", "pre-orders", "longer"}),
        (AclFilter(resource_type=RESOURCE_TOPIC, resource_name="payments", pattern_type=PATTERN_MATCH), {"star"}),
        # principal and host match exactly ("User:*" in a filter is not a wildcard)
        (AclFilter(principal="User:bob"), {"pre", "pre-orders", "longer"}),
        (AclFilter(principal="User:*"), {"star"}),
        (AclFilter(host="10.0.0.1"), {"pre"}),
        (AclFilter(operation=OP_WRITE), {"lit"}),
        (AclFilter(permission=DENY), {"pre"}),
        (AclFilter(principal="User:bob", permission=ALLOW, operation=OP_READ), {"pre-orders", "longer"}),
    ],
)  # fmt: skip
def test_filters(f: AclFilter, expected: set[str]) -> None:
    assert selected(f) == expected


def test_filter_wire_round_trip() -> None:
    f = AclFilter(RESOURCE_TOPIC, "orders", PATTERN_MATCH, "User:bob", "*", OP_READ, DENY)
    assert AclFilter.from_proto(f.to_proto()) == f
    assert AclFilter.from_proto(MATCH_ALL.to_proto()) == MATCH_ALL
    assert (MATCH_ALL.resource_type, MATCH_ALL.pattern_type) == (RESOURCE_ANY, PATTERN_ANY)
    assert (MATCH_ALL.operation, MATCH_ALL.permission) == (OP_ANY, PERMISSION_ANY)


def test_enum_names() -> None:
    assert operation_name(OP_CLUSTER_ACTION) == "CLUSTER_ACTION"
    assert operation_name(77) == "77"
    for text in ("cluster-action", "ClusterAction", "CLUSTER_ACTION", "clusteraction"):
        assert parse_enum(AclOperation, text) == OP_CLUSTER_ACTION
    with pytest.raises(InvalidRequestError, match="idempotent_write"):
        parse_enum(AclOperation, "unknown")
    with pytest.raises(InvalidRequestError):
        parse_enum(AclOperation, "read-ish")
    assert parse_enum(AclOperation, "read") == OP_READ
