"""The one place handlers ask "may the current caller do this?" and say no.

Every servicer holds an :class:`AccessGuard` over the node's :class:`Authorizer`. A handler
either requires a permission for the whole call (:meth:`AccessGuard.require`, raising the
*AuthorizationFailedError of the resource type, which ``rpc_errors`` turns into
PERMISSION_DENIED) or checks each item (:meth:`AccessGuard.denial`, whose error goes into that
item's result). The caller is the one the authentication interceptor bound for this call
(:func:`current_caller`).

A refusal is logged at warning level once per (principal, operation, resource) within
:data:`DENIAL_LOG_WINDOW_S`, so a misconfigured client retrying in a loop does not flood the
log; the set of recently logged refusals is bounded (:data:`MAX_LOGGED_DENIALS`).

With authorization off (:class:`AllowEverything`) every check returns at its first line: no
caller lookup, no dictionary, no log.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import structlog

from raftka.common.errors import RaftkaError
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.acl_authorizer import build_authorizer
from raftka.common.security.authorizer import AllowEverything, Authorizer
from raftka.common.security.caller import Caller, current_caller
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_CLUSTER_ACTION,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
    RESOURCE_USER,
)
from raftka.common.security.settings import SecuritySettings
from raftka.common.security_errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
from raftka.v1.common_pb2 import AclOperation, AclResourceType, ErrorCode

log = structlog.get_logger(__name__)

DENIAL_LOG_WINDOW_S = 60.0
"""A refusal of the same principal, operation and resource is logged once per window."""
MAX_LOGGED_DENIALS = 10_000
"""At most this many (principal, operation, resource) keys are remembered; the oldest go first."""

_ERROR_BY_TYPE: dict[int, type[RaftkaError]] = {
    RESOURCE_TOPIC: TopicAuthorizationFailedError,
    RESOURCE_GROUP: GroupAuthorizationFailedError,
    RESOURCE_CLUSTER: ClusterAuthorizationFailedError,
    RESOURCE_TRANSACTIONAL_ID: TransactionalIdAuthorizationFailedError,
    # Users (credentials) are administered with cluster permissions, as in Kafka.
    RESOURCE_USER: ClusterAuthorizationFailedError,
}

_CLI_FLAG_BY_TYPE: dict[int, str] = {
    RESOURCE_TOPIC: "--topic",
    RESOURCE_GROUP: "--group",
    RESOURCE_CLUSTER: "--cluster",
    RESOURCE_TRANSACTIONAL_ID: "--transactional-id",
    RESOURCE_USER: "--user",
}


def error_class_for(resource_type: int) -> type[RaftkaError]:
    """The *AuthorizationFailedError that a refusal on this resource type raises."""
    return _ERROR_BY_TYPE.get(resource_type, ClusterAuthorizationFailedError)


def error_for(resource_type: int) -> ErrorCode.ValueType:
    """The per-item ErrorCode of a refusal on this resource type (TOPIC_AUTHORIZATION_FAILED
    for a topic, ...)."""
    return error_class_for(resource_type).code


def operation_name(operation: int) -> str:
    return AclOperation.Name(operation).removeprefix("ACL_OPERATION_")  # type: ignore[arg-type]


def resource_type_name(resource_type: int) -> str:
    return AclResourceType.Name(resource_type).removeprefix(  # type: ignore[arg-type]
        "ACL_RESOURCE_TYPE_"
    )


def denial_message(caller: Caller, operation: int, resource_type: int, name: str) -> str:
    """What was refused and what to grant, e.g. ``User:bob may not WRITE topic 'orders':
    grant it with `raftka acls add --allow-principal User:bob --operation WRITE --topic
    orders```."""
    op = operation_name(operation)
    kind = resource_type_name(resource_type).lower().replace("_", " ")
    flag = _CLI_FLAG_BY_TYPE.get(resource_type, "--cluster")
    target = flag if resource_type == RESOURCE_CLUSTER else f"{flag} {name}"
    return (
        f"{caller.principal} may not {op} {kind} {name!r}: grant it with `raftka acls add "
        f"--allow-principal {caller.principal} --operation {op} {target}` (or use a principal "
        "that has it)"
    )


class DenialLog:
    """Logs each refused (principal, operation, resource) once per window, in bounded memory."""

    def __init__(
        self,
        *,
        window_s: float = DENIAL_LOG_WINDOW_S,
        max_keys: int = MAX_LOGGED_DENIALS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._last: OrderedDict[tuple[str, int, int, str], float] = OrderedDict()

    def refused(self, caller: Caller, operation: int, resource_type: int, name: str) -> bool:
        """Log the refusal unless the same one was logged within the window; True if logged."""
        key = (caller.principal, operation, resource_type, name)
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._window_s:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self._max_keys:
            self._last.popitem(last=False)
        log.warning(
            "authorization_denied",
            principal=caller.principal,
            host=caller.host,
            operation=operation_name(operation),
            resource_type=resource_type_name(resource_type),
            resource=name,
            method=caller.method,
            request_id=caller.request_id,
        )
        return True


class AccessGuard:
    """Authorization checks for handlers, over one node's authorizer."""

    __slots__ = ("_authorizer", "_denials", "enabled")

    def __init__(self, authorizer: Authorizer, *, denials: DenialLog | None = None) -> None:
        self._authorizer = authorizer
        self._denials = denials or DenialLog()
        self.enabled = authorizer.enabled
        """False when everything is allowed: callers may skip whole checks."""

    @property
    def authorizer(self) -> Authorizer:
        return self._authorizer

    def allowed(self, operation: int, resource_type: int, name: str) -> bool:
        """True when the current caller may; a refusal is logged (once per window)."""
        if not self.enabled:
            return True
        caller = current_caller()
        if self._authorizer.authorize(caller, operation, resource_type, name):
            return True
        self._denials.refused(caller, operation, resource_type, name)
        return False

    def allowed_quietly(self, operation: int, resource_type: int, name: str) -> bool:
        """Like :meth:`allowed`, without logging: for filtering what a listing shows (Kafka
        does not log topics left out of a Metadata answer)."""
        return not self.enabled or self._authorizer.authorize(
            current_caller(), operation, resource_type, name
        )

    def denial(self, operation: int, resource_type: int, name: str) -> RaftkaError | None:
        """None when allowed; otherwise the error to report for this item (its ``code`` is
        the per-item ErrorCode, its ``message`` names what to grant)."""
        if self.allowed(operation, resource_type, name):
            return None
        return error_class_for(resource_type)(
            denial_message(current_caller(), operation, resource_type, name)
        )

    def refusals(
        self, operation: int, resource_type: int, names: Iterable[str]
    ) -> dict[str, RaftkaError]:
        """The ``names`` the caller may not ``operation``, each with the error for its item
        (in the order first named); empty when authorization is off."""
        if not self.enabled:
            return {}
        found = {n: self.denial(operation, resource_type, n) for n in dict.fromkeys(names)}
        return {n: e for n, e in found.items() if e is not None}

    def require(self, operation: int, resource_type: int, name: str) -> None:
        """Raise the resource type's *AuthorizationFailedError unless the caller may."""
        error = self.denial(operation, resource_type, name)
        if error is not None:
            raise error

    def require_cluster(self, operation: int) -> None:
        self.require(operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)

    def require_cluster_action(self) -> None:
        """Inter-node RPCs: only nodes (principals with CLUSTER_ACTION) may."""
        self.require(OP_CLUSTER_ACTION, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)

    def is_node(self) -> bool:
        """True when the caller has CLUSTER_ACTION (is a node), without logging a refusal."""
        return self.allowed_quietly(OP_CLUSTER_ACTION, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)

    def allowed_any(self, operation: int, resource_type: int) -> bool:
        """Kafka's authorizeByResourceType: some resource of the type allows it."""
        return not self.enabled or self._authorizer.authorize_any(
            current_caller(), operation, resource_type
        )


OPEN_GUARD = AccessGuard(AllowEverything())
"""The guard of a node with authorization off (and the default of every servicer)."""

AuthorizerFactory = Callable[
    [SecuritySettings, Callable[[], SecurityImage], Callable[[], bool]], Authorizer
]


def guard_for(
    settings: SecuritySettings,
    image: Callable[[], SecurityImage],
    authorizer_factory: AuthorizerFactory | None = None,
    *,
    ready: Callable[[], bool] = lambda: True,
) -> AccessGuard:
    """The guard of a node: everything allowed unless ``settings.authorizer_enable``, else
    ACLs from ``image`` (the node's current security image) with Kafka's semantics; until
    ``ready`` (the image has caught up with the committed metadata), super users only."""
    if not settings.authorizer_enable:
        return OPEN_GUARD
    factory = authorizer_factory or build_authorizer
    return AccessGuard(factory(settings, image, ready))
