"""AccessGuard: which error a refusal raises, what its message says, per-item answers, and
the denial log (once per principal, operation and resource within a window; bounded)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.authorizer import AllowEverything, Authorizer
from raftka.common.security.caller import bind_caller, reset_caller
from raftka.common.security.guard import OPEN_GUARD, AccessGuard, DenialLog, error_for, guard_for
from raftka.common.security.model import (
    OP_DESCRIBE,
    OP_READ,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)
from raftka.common.security.settings import SecuritySettings
from raftka.common.security_errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from raftka.v1.common_pb2 import ErrorCode
from tests.unit.common.security.fakes import NODE, FakeAuthorizer, caller

ALICE = "User:alice"


@pytest.fixture
def as_alice() -> Iterator[None]:
    token = bind_caller(caller(ALICE))
    yield
    reset_caller(token)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def guard(*grants: tuple[str, int, int, str], clock: Clock | None = None) -> AccessGuard:
    return AccessGuard(FakeAuthorizer(grants), denials=DenialLog(clock=clock or Clock()))


@pytest.mark.parametrize(
    ("resource_type", "error", "code"),
    [
        (RESOURCE_TOPIC, TopicAuthorizationFailedError, ErrorCode.TOPIC_AUTHORIZATION_FAILED),
        (RESOURCE_GROUP, GroupAuthorizationFailedError, ErrorCode.GROUP_AUTHORIZATION_FAILED),
        (RESOURCE_CLUSTER, ClusterAuthorizationFailedError, ErrorCode.CLUSTER_AUTHORIZATION_FAILED),
        (
            RESOURCE_TRANSACTIONAL_ID,
            TransactionalIdAuthorizationFailedError,
            ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ),
    ],
)
def test_a_refusal_raises_the_error_of_the_resource_type(
    as_alice: None, resource_type: int, error: type[Exception], code: int
) -> None:
    g = guard()
    with pytest.raises(error):
        g.require(OP_WRITE, resource_type, "orders")
    assert error_for(resource_type) == code
    denial = g.denial(OP_WRITE, resource_type, "orders")
    assert denial is not None and denial.code == code


def test_the_message_names_principal_operation_resource_and_the_grant(as_alice: None) -> None:
    with pytest.raises(TopicAuthorizationFailedError) as raised:
        guard().require(OP_WRITE, RESOURCE_TOPIC, "orders")
    message = str(raised.value)
    assert "User:alice may not WRITE topic 'orders'" in message
    assert (
        "raftka acls add --allow-principal User:alice --operation WRITE --topic orders" in message
    )
    with pytest.raises(
        ClusterAuthorizationFailedError, match="--operation CLUSTER_ACTION --cluster`"
    ):
        guard().require_cluster_action()


def test_what_is_granted_is_allowed_and_nothing_more(as_alice: None) -> None:
    g = guard((ALICE, OP_READ, RESOURCE_TOPIC, "orders"))
    g.require(OP_READ, RESOURCE_TOPIC, "orders")
    assert g.denial(OP_READ, RESOURCE_TOPIC, "orders") is None
    assert not g.allowed(OP_READ, RESOURCE_TOPIC, "payments")
    assert not g.allowed(OP_WRITE, RESOURCE_TOPIC, "orders")
    assert g.allowed_any(OP_READ, RESOURCE_TOPIC) and not g.allowed_any(OP_WRITE, RESOURCE_TOPIC)
    assert not g.is_node()


def test_a_node_has_cluster_action() -> None:
    token = bind_caller(caller(NODE))
    try:
        guard().require_cluster_action()
        assert guard().is_node()
    finally:
        reset_caller(token)


def test_the_anonymous_caller_is_refused_when_authorization_is_on() -> None:
    with pytest.raises(ClusterAuthorizationFailedError, match="User:ANONYMOUS"):
        guard().require_cluster_action()


def test_a_denial_is_logged_once_per_window_with_its_context(as_alice: None) -> None:
    clock = Clock()
    g = guard(clock=clock)
    with capture_logs() as logs:
        for _ in range(5):
            assert not g.allowed(OP_READ, RESOURCE_TOPIC, "orders")
        g.allowed(OP_READ, RESOURCE_TOPIC, "payments")  # another resource: logged
        clock.now = 61.0
        g.allowed(OP_READ, RESOURCE_TOPIC, "orders")  # a new window: logged again
    denials = [e for e in logs if e["event"] == "authorization_denied"]
    assert [d["resource"] for d in denials] == ["orders", "payments", "orders"]
    first = denials[0]
    assert first["log_level"] == "warning"
    assert (first["principal"], first["host"], first["operation"], first["resource_type"]) == (
        ALICE,
        "10.0.0.9",
        "READ",
        "TOPIC",
    )
    assert first["request_id"] == "r-1"


def test_the_denial_log_forgets_the_oldest_keys_beyond_its_bound(as_alice: None) -> None:
    clock = Clock()
    log = DenialLog(max_keys=3, clock=clock)
    c = caller(ALICE)
    for name in "abcd":
        assert log.refused(c, OP_READ, RESOURCE_TOPIC, name)
    assert len(log._last) == 3
    assert log.refused(c, OP_READ, RESOURCE_TOPIC, "a")  # forgotten, so logged again
    assert not log.refused(c, OP_READ, RESOURCE_TOPIC, "d")


def test_allowing_everything_checks_nothing(as_alice: None) -> None:
    assert not OPEN_GUARD.enabled
    with capture_logs() as logs:
        OPEN_GUARD.require_cluster_action()
        assert OPEN_GUARD.denial(OP_DESCRIBE, RESOURCE_GROUP, "g") is None
    assert logs == []


def test_the_guard_of_a_node_follows_its_settings() -> None:
    image = SecurityImage()
    assert guard_for(SecuritySettings(), lambda: image) is OPEN_GUARD
    built: list[SecuritySettings] = []

    def factory(settings: SecuritySettings, _image: object, _ready: object) -> Authorizer:
        built.append(settings)
        return FakeAuthorizer()

    on = SecuritySettings(authorizer_enable=True)
    g = guard_for(on, lambda: image, factory)
    assert g.enabled and built == [on]
    assert isinstance(OPEN_GUARD.authorizer, AllowEverything)


def test_refusals_names_each_refused_item_once_in_request_order(as_alice: None) -> None:
    g = guard((ALICE, OP_WRITE, RESOURCE_TOPIC, "ok"))
    refused = g.refusals(OP_WRITE, RESOURCE_TOPIC, ["no-2", "ok", "no-1", "no-2"])
    assert list(refused) == ["no-2", "no-1"]
    assert all(e.code == ErrorCode.TOPIC_AUTHORIZATION_FAILED for e in refused.values())
    assert OPEN_GUARD.refusals(OP_WRITE, RESOURCE_TOPIC, ["no-1"]) == {}
