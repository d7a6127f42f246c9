"""StandardAuthorizer: Kafka's decision rules (digest section 8), a table of cases, a
randomized cross-check against a naive reading of the rules, and the lazy index."""

from __future__ import annotations

import random
from itertools import count

import pytest

from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.acl_authorizer import StandardAuthorizer, build_authorizer
from raftka.common.security.authorizer import AllowEverything
from raftka.common.security.caller import Caller
from raftka.common.security.model import (
    ALLOW,
    CLUSTER_RESOURCE_NAME,
    DENY,
    LITERAL,
    OP_ALL,
    OP_ALTER,
    OP_ALTER_CONFIGS,
    OP_CLUSTER_ACTION,
    OP_CREATE,
    OP_DELETE,
    OP_DESCRIBE,
    OP_DESCRIBE_CONFIGS,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
    Acl,
)
from raftka.common.security.settings import SecuritySettings
from raftka.v1.metadata_pb2 import (
    AccessControlEntryRecord,
    MetadataRecord,
    RemoveAccessControlEntryRecord,
)

ALICE = Caller(principal="User:alice", host="10.0.0.1", authenticated=True)
BOB = Caller(principal="User:bob", host="10.0.0.2", authenticated=True)
ADMIN = Caller(principal="User:admin", host="10.0.0.9", authenticated=True)


def acl(
    permission: int,
    operation: int,
    name: str = "orders",
    *,
    principal: str = "User:alice",
    host: str = "*",
    pattern: int = LITERAL,
    rtype: int = RESOURCE_TOPIC,
) -> Acl:
    return Acl(rtype, name, pattern, principal, host, operation, permission)


class Images:
    """A security image fed by records, as replay feeds it."""

    def __init__(self) -> None:
        self.image = SecurityImage()
        self._ids = count()

    def add(self, *acls: Acl) -> list[str]:
        ids = []
        for a in acls:
            acl_id = f"id{next(self._ids)}"
            self.image.apply(
                MetadataRecord(
                    access_control_entry=AccessControlEntryRecord(id=acl_id, binding=a.to_proto())
                )
            )
            ids.append(acl_id)
        return ids

    def remove(self, acl_id: str) -> None:
        self.image.apply(
            MetadataRecord(remove_access_control_entry=RemoveAccessControlEntryRecord(id=acl_id))
        )


def authorizer(
    *acls: Acl, super_users: frozenset[str] = frozenset(), open_if_none: bool = False
) -> StandardAuthorizer:
    images = Images()
    images.add(*acls)
    return StandardAuthorizer(lambda: images.image, super_users, open_if_none)


# (ACLs, caller, operation, resource type, resource name, allow_everyone_if_no_acl_found, expected)
CASES = [
    # no ACLs at all: allow_everyone_if_no_acl_found decides
    ((), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((), ALICE, OP_READ, RESOURCE_TOPIC, "orders", True, True),
    # ACLs on the resource but none for the caller: denied even with allow_everyone
    ((acl(ALLOW, OP_READ, principal="User:bob"),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", True, False),
    # ACLs only on another resource: the resource has none, so allow_everyone decides
    ((acl(ALLOW, OP_READ, "other"),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", True, True),
    ((acl(ALLOW, OP_READ, "other"),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    # literal allow
    ((acl(ALLOW, OP_READ),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_READ),), ALICE, OP_WRITE, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_READ),), BOB, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    # the same name on another resource type is another resource
    ((acl(ALLOW, OP_READ, rtype=RESOURCE_GROUP),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    # a deny beats an allow, whatever the order and however they match
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ)), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((acl(DENY, OP_READ), acl(ALLOW, OP_ALL)), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ, "*", principal="User:*")), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ, "ord", pattern=PREFIXED)), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    # a deny for another principal or host does not apply
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ, principal="User:bob")), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ, host="10.0.0.99")), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ, host="10.0.0.1")), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    # wildcard principal, host, and resource
    ((acl(ALLOW, OP_READ, principal="User:*"),), BOB, OP_READ, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_READ, host="10.0.0.1"),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_READ, host="10.0.0.2"),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_READ, "*"),), ALICE, OP_READ, RESOURCE_TOPIC, "anything", False, True),
    # prefixed: names that start with the prefix, and nothing else
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED),), ALICE, OP_WRITE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED),), ALICE, OP_WRITE, RESOURCE_TOPIC, "ord", False, True),
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED),), ALICE, OP_WRITE, RESOURCE_TOPIC, "or", False, False),
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED),), ALICE, OP_WRITE, RESOURCE_TOPIC, "xorders", False, False),
    ((acl(ALLOW, OP_WRITE, "orders", pattern=PREFIXED),), ALICE, OP_WRITE, RESOURCE_TOPIC, "ord", False, False),
    # a literal "ord*" is not a pattern
    ((acl(ALLOW, OP_WRITE, "ord*"),), ALICE, OP_WRITE, RESOURCE_TOPIC, "orders", False, False),
    # implied operations, for ALLOW only
    ((acl(ALLOW, OP_READ),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_WRITE),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_DELETE),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_ALTER),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_CREATE),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_DESCRIBE),), ALICE, OP_READ, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_ALTER_CONFIGS),), ALICE, OP_DESCRIBE_CONFIGS, RESOURCE_TOPIC, "orders", False, True),
    ((acl(ALLOW, OP_ALTER_CONFIGS),), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_DESCRIBE_CONFIGS),), ALICE, OP_ALTER_CONFIGS, RESOURCE_TOPIC, "orders", False, False),
    ((acl(ALLOW, OP_ALL),), ALICE, OP_CLUSTER_ACTION, RESOURCE_TOPIC, "orders", False, True),
    # a DENY READ does not deny DESCRIBE (even with an ALLOW READ that implies it)
    ((acl(ALLOW, OP_READ), acl(DENY, OP_READ)), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, True),
    ((acl(DENY, OP_ALTER_CONFIGS), acl(ALLOW, OP_DESCRIBE_CONFIGS)), ALICE, OP_DESCRIBE_CONFIGS, RESOURCE_TOPIC, "orders", False, True),
    # DENY ALL denies everything
    ((acl(ALLOW, OP_DESCRIBE), acl(DENY, OP_ALL)), ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders", False, False),
    # the cluster resource
    ((acl(ALLOW, OP_IDEMPOTENT_WRITE, CLUSTER_RESOURCE_NAME, rtype=RESOURCE_CLUSTER),), ALICE, OP_IDEMPOTENT_WRITE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, False, True),
    ((acl(ALLOW, OP_ALTER, CLUSTER_RESOURCE_NAME, rtype=RESOURCE_CLUSTER),), ALICE, OP_CLUSTER_ACTION, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, False, False),
    # an internal caller (no host) matches only "*" hosts
    ((acl(ALLOW, OP_READ, host="10.0.0.1"),), Caller("User:alice", "", True), OP_READ, RESOURCE_TOPIC, "orders", False, False),
]  # fmt: skip


@pytest.mark.parametrize("acls,caller,op,rtype,name,open_if_none,expected", CASES)
def test_decision_table(
    acls: tuple[Acl, ...],
    caller: Caller,
    op: int,
    rtype: int,
    name: str,
    open_if_none: bool,
    expected: bool,
) -> None:
    assert (
        authorizer(*acls, open_if_none=open_if_none).authorize(caller, op, rtype, name) is expected
    )


def test_super_users_are_allowed_even_against_a_deny() -> None:
    a = authorizer(
        acl(DENY, OP_ALL, "*", principal="User:*"), super_users=frozenset({"User:admin"})
    )
    assert a.authorize(ADMIN, OP_WRITE, RESOURCE_TOPIC, "orders")
    assert a.authorize(ADMIN, OP_CLUSTER_ACTION, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
    assert a.authorize_any(ADMIN, OP_WRITE, RESOURCE_TOPIC)
    assert not a.authorize(ALICE, OP_WRITE, RESOURCE_TOPIC, "orders")


def test_until_the_image_has_caught_up_only_super_users_are_allowed() -> None:
    """A node that has just started may hold only part of the ACLs: a DENY not yet replayed
    must not turn into an allow (allow_everyone_if_no_acl_found), so nobody but a super user
    is allowed until the image is whole."""
    images = Images()
    images.add(acl(ALLOW, OP_WRITE, "orders"))
    ready = False
    a = StandardAuthorizer(
        lambda: images.image, frozenset({"User:admin"}), True, ready=lambda: ready
    )
    assert a.authorize(ADMIN, OP_WRITE, RESOURCE_TOPIC, "orders")
    assert not a.authorize(ALICE, OP_WRITE, RESOURCE_TOPIC, "orders")
    assert not a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "no-acls-here")
    ready = True
    assert a.authorize(ALICE, OP_WRITE, RESOURCE_TOPIC, "orders")
    assert a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "no-acls-here")


# ---- authorize_any (Kafka's authorizeByResourceType) ----

ANY_CASES = [
    ((), False, False),
    ((), True, True),  # "hardcode" has no ACL and allow_everyone is on
    ((acl(ALLOW, OP_WRITE),), False, True),
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED),), False, True),
    ((acl(ALLOW, OP_ALL),), False, True),
    ((acl(ALLOW, OP_READ),), False, False),  # another operation
    ((acl(ALLOW, OP_WRITE, principal="User:bob"),), False, False),
    ((acl(ALLOW, OP_WRITE), acl(DENY, OP_WRITE)), False, False),  # same literal denied
    ((acl(ALLOW, OP_WRITE), acl(DENY, OP_WRITE, "ord", pattern=PREFIXED)), False, False),
    ((acl(ALLOW, OP_WRITE), acl(DENY, OP_WRITE, "other")), False, True),
    ((acl(ALLOW, OP_WRITE, "ord", pattern=PREFIXED), acl(DENY, OP_WRITE, "orders", pattern=PREFIXED)), False, True),
    ((acl(ALLOW, OP_WRITE, "orders", pattern=PREFIXED), acl(DENY, OP_WRITE, "ord", pattern=PREFIXED)), False, False),
    ((acl(ALLOW, OP_WRITE, "*"),), False, True),
    ((acl(ALLOW, OP_WRITE, "*"), acl(DENY, OP_WRITE, "orders")), False, True),
    ((acl(ALLOW, OP_WRITE), acl(DENY, OP_WRITE, "*")), False, False),
    ((acl(ALLOW, OP_WRITE), acl(DENY, OP_ALL, "*")), False, False),
    ((acl(ALLOW, OP_WRITE, rtype=RESOURCE_GROUP),), False, False),  # another resource type
]  # fmt: skip


@pytest.mark.parametrize("acls,open_if_none,expected", ANY_CASES)
def test_authorize_any(acls: tuple[Acl, ...], open_if_none: bool, expected: bool) -> None:
    a = authorizer(*acls, open_if_none=open_if_none)
    assert a.authorize_any(ALICE, OP_WRITE, RESOURCE_TOPIC) is expected


# ---- the randomized cross-check ----

IMPLIED: dict[int, set[int]] = {
    OP_DESCRIBE: {OP_READ, OP_WRITE, OP_DELETE, OP_ALTER},
    OP_DESCRIBE_CONFIGS: {OP_ALTER_CONFIGS},
}


def naive(
    acls: list[Acl],
    super_users: frozenset[str],
    open_if_none: bool,
    caller: Caller,
    op: int,
    rtype: int,
    name: str,
) -> bool:
    """The rules read literally, scanning every ACL."""
    if caller.principal in super_users:
        return True

    def on_resource(a: Acl) -> bool:
        if a.resource_type != rtype:
            return False
        if a.pattern_type == LITERAL:
            return a.resource_name in (name, "*")
        return name.startswith(a.resource_name)

    def for_caller(a: Acl) -> bool:
        return a.principal in (caller.principal, "User:*") and a.host in ("*", caller.host)

    mine = [a for a in acls if on_resource(a) and for_caller(a)]
    if any(a.permission == DENY and a.operation in (op, OP_ALL) for a in mine):
        return False
    if any(
        a.permission == ALLOW
        and (a.operation in (op, OP_ALL) or a.operation in IMPLIED.get(op, set()))
        for a in mine
    ):
        return True
    return open_if_none and not any(on_resource(a) for a in acls)


NAMES = ["orders", "ord", "o", "payments", "pay", "*", "orders-eu", "x"]
OPS = [OP_ALL, OP_READ, OP_WRITE, OP_CREATE, OP_DELETE, OP_ALTER, OP_DESCRIBE, OP_CLUSTER_ACTION,
       OP_DESCRIBE_CONFIGS, OP_ALTER_CONFIGS, OP_IDEMPOTENT_WRITE]  # fmt: skip
PRINCIPALS = ["User:alice", "User:bob", "User:*"]
HOSTS = ["*", "10.0.0.1", "10.0.0.2"]
TYPES = [RESOURCE_TOPIC, RESOURCE_GROUP, RESOURCE_TRANSACTIONAL_ID]


def random_acl(rng: random.Random) -> Acl:
    name = rng.choice(NAMES)
    pattern = LITERAL if name == "*" else rng.choice([LITERAL, PREFIXED])
    return Acl(
        rng.choice(TYPES),
        name,
        pattern,
        rng.choice(PRINCIPALS),
        rng.choice(HOSTS),
        rng.choice(OPS),
        rng.choice([ALLOW, DENY]),
    )


@pytest.mark.parametrize("seed", range(40))
def test_matches_a_naive_reading_of_the_rules(seed: int) -> None:
    rng = random.Random(seed)
    images = Images()
    acls = [random_acl(rng) for _ in range(rng.randint(0, 25))]
    ids = images.add(*acls)
    live = dict(zip(ids, acls, strict=True))
    super_users = frozenset({"User:bob"}) if rng.random() < 0.2 else frozenset()
    open_if_none = rng.random() < 0.5
    a = StandardAuthorizer(lambda: images.image, super_users, open_if_none)
    for step in range(300):
        if step % 50 == 49 and live:  # change the ACLs: the index must follow
            victim = rng.choice(sorted(live))
            images.remove(victim)
            del live[victim]
            new = random_acl(rng)
            (new_id,) = images.add(new)
            live[new_id] = new
        caller = Caller(rng.choice(["User:alice", "User:bob", "User:carol"]),
                        rng.choice(["10.0.0.1", "10.0.0.2", ""]), True)  # fmt: skip
        op = rng.choice(OPS[1:])
        rtype = rng.choice(TYPES)
        name = rng.choice([n for n in NAMES if n != "*"] + ["orders-us", "p"])
        expected = naive(list(live.values()), super_users, open_if_none, caller, op, rtype, name)
        assert a.authorize(caller, op, rtype, name) is expected, (caller, op, rtype, name, live)


# ---- the index follows the image ----


def test_index_is_rebuilt_when_the_acls_change_and_only_then() -> None:
    images = Images()
    a = StandardAuthorizer(lambda: images.image)
    assert not a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "orders")
    (acl_id,) = images.add(acl(ALLOW, OP_READ))
    assert a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "orders")
    index = a._index
    assert a.authorize(ALICE, OP_DESCRIBE, RESOURCE_TOPIC, "orders")
    assert a._index is index, "no change, no rebuild"
    images.remove(acl_id)
    assert not a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "orders")


def test_follows_a_new_image_object_after_a_snapshot_load() -> None:
    """A node that loads a snapshot replaces its image: the version may be equal, the ACLs
    are not."""
    old = MetadataImage()
    new = MetadataImage()
    new.apply(
        MetadataRecord(
            access_control_entry=AccessControlEntryRecord(
                id="a", binding=acl(ALLOW, OP_READ).to_proto()
            )
        ),
        1,
    )
    old.apply(
        MetadataRecord(
            access_control_entry=AccessControlEntryRecord(
                id="b", binding=acl(ALLOW, OP_WRITE).to_proto()
            )
        ),
        1,
    )
    current = [old]
    a = StandardAuthorizer(lambda: current[0].security)
    assert a.authorize(ALICE, OP_WRITE, RESOURCE_TOPIC, "orders")
    current[0] = new
    assert old.security.version == new.security.version
    assert a.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "orders")
    assert not a.authorize(ALICE, OP_WRITE, RESOURCE_TOPIC, "orders")


def test_build_authorizer() -> None:
    image = SecurityImage()
    off = build_authorizer(SecuritySettings(), lambda: image)
    assert isinstance(off, AllowEverything) and not off.enabled
    on = build_authorizer(
        SecuritySettings(
            authorizer_enable=True,
            super_users="User:admin; User:node-1",
            allow_everyone_if_no_acl_found=True,
        ),
        lambda: image,
    )
    assert isinstance(on, StandardAuthorizer) and on.enabled
    assert on.super_users == frozenset({"User:admin", "User:node-1"})
    assert on.authorize(ALICE, OP_READ, RESOURCE_TOPIC, "orders")  # no ACL: open
