"""``raftka acls``: what the options turn into (ACLs to create, filters), before any RPC."""

from __future__ import annotations

import argparse
import asyncio

import pytest

from raftka.client.cli.acls import _run, acls_to_add, filters
from raftka.client.cli.app import build_parser
from raftka.common.errors import InvalidRequestError
from raftka.common.security.acl_filters import (
    OP_ANY,
    PATTERN_ANY,
    PATTERN_MATCH,
    PERMISSION_ANY,
    RESOURCE_ANY,
    AclFilter,
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
    RESOURCE_TRANSACTIONAL_ID,
    Acl,
)


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["acls", *argv])


def test_add_makes_one_acl_per_principal_host_operation_and_resource() -> None:
    args = parse(
        "add", "--allow-principal", "User:alice", "--deny-principal", "User:bob",
        "--operation", "write", "--operation", "Read", "--topic", "orders",
        "--transactional-id", "tx", "--resource-pattern-type", "prefixed",
    )  # fmt: skip
    acls = acls_to_add(args)
    assert len(acls) == 2 * 2 * 2
    assert Acl(RESOURCE_TOPIC, "orders", PREFIXED, "User:alice", "*", OP_WRITE, ALLOW) in acls
    assert Acl(RESOURCE_TRANSACTIONAL_ID, "tx", PREFIXED, "User:bob", "*", OP_READ, DENY) in acls


def test_add_on_the_cluster_with_hosts() -> None:
    args = parse(
        "add", "--allow-principal", "User:node-1", "--operation", "cluster-action", "--cluster",
        "--host", "10.0.0.1", "--host", "10.0.0.2",
    )  # fmt: skip
    assert acls_to_add(args) == [
        Acl(RESOURCE_CLUSTER, "kafka-cluster", LITERAL, "User:node-1", h, OP_CLUSTER_ACTION, ALLOW)
        for h in ("10.0.0.1", "10.0.0.2")
    ]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["add", "--allow-principal", "User:a", "--operation", "read"], "name a resource"),
        (["add", "--operation", "read", "--topic", "t"], "name a principal"),
        (["add", "--allow-principal", "User:a", "--operation", "jump", "--topic", "t"], "jump"),
    ],
)
def test_add_refuses_incomplete_commands(argv: list[str], message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message):
        acls_to_add(parse(*argv))


def test_list_filters() -> None:
    assert filters(parse("list")) == [AclFilter()]
    assert filters(parse("list", "--principal", "User:bob", "--permission", "deny")) == [
        AclFilter(principal="User:bob", permission=DENY)
    ]
    assert filters(parse("list", "--topic", "orders", "--group", "g")) == [
        AclFilter(RESOURCE_TOPIC, "orders", LITERAL, None, None, OP_ANY, PERMISSION_ANY),
        AclFilter(RESOURCE_GROUP, "g", LITERAL, None, None, OP_ANY, PERMISSION_ANY),
    ]
    (match,) = filters(parse("list", "--topic", "o", "--resource-pattern-type", "match"))
    assert (match.pattern_type, match.resource_name) == (PATTERN_MATCH, "o")
    (everything,) = filters(parse("list", "--operation", "read"))
    assert (everything.resource_type, everything.pattern_type) == (RESOURCE_ANY, PATTERN_ANY)
    assert everything.operation == OP_READ


def test_remove_needs_a_resource_or_a_principal() -> None:
    with pytest.raises(InvalidRequestError, match="by accident"):
        asyncio.run(_run(object(), parse("remove", "--operation", "read")))  # type: ignore[arg-type]
