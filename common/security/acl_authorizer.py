"""Kafka's StandardAuthorizer over the ACLs of the node's metadata image.

The decision, for a caller, an operation and a resource (digest section 8, Kafka's
``StandardAuthorizerData``):

1. a super user is allowed everything;
2. the ACLs *on the resource* are those whose pattern covers it: LITERAL with its exact name,
   LITERAL ``*``, or PREFIXED with a prefix of its name;
3. of those, the ACLs that *match the caller* name its principal or ``User:*`` and its IP
   address or ``*``;
4. a matching DENY for the operation (or for ALL) wins; else a matching ALLOW for the
   operation, for ALL, or for an operation that implies it (READ, WRITE, DELETE and ALTER imply
   DESCRIBE; ALTER_CONFIGS implies DESCRIBE_CONFIGS) allows;
5. nothing matched: denied when the resource has ACLs at all, else
   ``allow_everyone_if_no_acl_found`` decides.

The ACLs are indexed per resource type (literal by name, the ``*`` wildcard, prefixed by
prefix) and the index is rebuilt only when the image's security ``version`` changes, so one
decision costs the ACLs on the resource plus a dict lookup per distinct prefix length, never a
scan of every ACL. Nothing here logs: the caller of ``authorize`` knows which error to give and
logs the denial once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.authorizer import AllowEverything, Authorizer
from raftka.common.security.caller import Caller
from raftka.common.security.model import (
    ALLOW,
    DENY,
    LITERAL,
    OP_ALL,
    OP_ALTER,
    OP_ALTER_CONFIGS,
    OP_DELETE,
    OP_DESCRIBE,
    OP_DESCRIBE_CONFIGS,
    OP_READ,
    OP_WRITE,
    PREFIXED,
    WILDCARD_HOST,
    WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
    Acl,
)
from raftka.common.security.settings import SecuritySettings

IMPLIED_BY: dict[int, frozenset[int]] = {
    OP_DESCRIBE: frozenset({OP_DESCRIBE, OP_READ, OP_WRITE, OP_DELETE, OP_ALTER}),
    OP_DESCRIBE_CONFIGS: frozenset({OP_DESCRIBE_CONFIGS, OP_ALTER_CONFIGS}),
}
"""Operation -> the ALLOW operations that grant it (besides ALL). Not used for DENY: a DENY
READ does not deny DESCRIBE."""

_PROBE_NAME = "hardcode"
"""The resource name Kafka's authorizeByResourceType first asks about, so that super users and
``*`` ACLs decide before the per-pattern reasoning."""


def acl_matches_caller(acl: Acl, principal: str, host: str) -> bool:
    """The ACL names the caller's principal (or everyone) and its host (or any host)."""
    return (acl.principal == principal or acl.principal == WILDCARD_PRINCIPAL) and (
        acl.host == WILDCARD_HOST or acl.host == host
    )


def acl_decision(acl: Acl, operation: int) -> int | None:
    """ALLOW or DENY when this ACL (already matching the caller) speaks about ``operation``,
    else None (Kafka's ``findResult`` without the principal and host checks)."""
    if acl.operation != OP_ALL:
        if acl.permission == ALLOW:
            if acl.operation not in IMPLIED_BY.get(operation, frozenset({operation})):
                return None
        elif acl.operation != operation:
            return None
    return acl.permission


@dataclass(slots=True)
class _TypeIndex:
    """The ACLs of one resource type, by how their pattern finds resources."""

    literal: dict[str, list[Acl]] = field(default_factory=lambda: defaultdict(list))
    wildcard: list[Acl] = field(default_factory=list)
    prefixed: dict[str, list[Acl]] = field(default_factory=lambda: defaultdict(list))
    prefix_lengths: list[int] = field(default_factory=list)
    every: list[Acl] = field(default_factory=list)

    def add(self, acl: Acl) -> None:
        self.every.append(acl)
        if acl.pattern_type == PREFIXED:
            self.prefixed[acl.resource_name].append(acl)
        elif acl.resource_name == WILDCARD_RESOURCE:
            self.wildcard.append(acl)
        else:
            self.literal[acl.resource_name].append(acl)

    def finish(self) -> None:
        self.prefix_lengths = sorted({len(p) for p in self.prefixed})

    def on_resource(self, name: str) -> Iterable[list[Acl]]:
        """The lists of ACLs whose pattern covers the resource ``name``."""
        exact = self.literal.get(name)
        if exact:
            yield exact
        if self.wildcard:
            yield self.wildcard
        for length in self.prefix_lengths:
            if length > len(name):
                break
            found = self.prefixed.get(name[:length])
            if found:
                yield found


def _build_index(acls: Iterable[Acl]) -> dict[int, _TypeIndex]:
    index: dict[int, _TypeIndex] = defaultdict(_TypeIndex)
    for acl in acls:
        if acl.pattern_type in (LITERAL, PREFIXED):
            index[acl.resource_type].add(acl)
    for type_index in index.values():
        type_index.finish()
    return dict(index)


class StandardAuthorizer:
    """Kafka's StandardAuthorizer semantics over ``image().acls``."""

    enabled = True

    def __init__(
        self,
        image: Callable[[], SecurityImage],
        super_users: frozenset[str] = frozenset(),
        allow_everyone_if_no_acl_found: bool = False,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """``ready``: whether the node's image holds every committed ACL yet; until it does,
        only super users are allowed (Kafka's AuthorizerNotReady), so a node that has just
        started never decides from a partial list (a missing DENY would allow)."""
        self._image = image
        self._ready = ready
        self.super_users = super_users
        self.allow_everyone_if_no_acl_found = allow_everyone_if_no_acl_found
        self._index: dict[int, _TypeIndex] = {}
        self._indexed: tuple[int, int] | None = None

    def _acls_of(self, resource_type: int) -> _TypeIndex | None:
        image = self._image()
        # The image object changes when a node loads a snapshot (version may restart), so the
        # key is the pair.
        key = (id(image), image.version)
        if key != self._indexed:
            self._index = _build_index(image.acls.values())
            self._indexed = key
        return self._index.get(resource_type)

    def authorize(
        self, caller: Caller, operation: int, resource_type: int, resource_name: str
    ) -> bool:
        if caller.principal in self.super_users:
            return True
        if not self._ready():
            return False
        index = self._acls_of(resource_type)
        if index is None:
            return self.allow_everyone_if_no_acl_found
        has_acls = False
        allowed = False
        for acls in index.on_resource(resource_name):
            has_acls = True
            for acl in acls:
                if not acl_matches_caller(acl, caller.principal, caller.host):
                    continue
                decision = acl_decision(acl, operation)
                if decision == DENY:
                    return False
                if decision == ALLOW:
                    allowed = True
        if allowed:
            return True
        return not has_acls and self.allow_everyone_if_no_acl_found

    def authorize_any(self, caller: Caller, operation: int, resource_type: int) -> bool:
        """Kafka's ``Authorizer.authorizeByResourceType``: allowed when some ALLOW for the
        operation (or ALL; no implied operations) on a literal name or prefix is not covered by
        a DENY of the same literal name or of a prefix of it (or when a ``*`` ALLOW exists and
        no ``*`` DENY does)."""
        if self.authorize(caller, operation, resource_type, _PROBE_NAME):
            return True
        index = self._acls_of(resource_type)
        if index is None:
            return False
        deny_literal: set[str] = set()
        deny_prefixed: set[str] = set()
        allow_literal: set[str] = set()
        allow_prefixed: set[str] = set()
        wildcard_allow = False
        for acl in index.every:
            if not acl_matches_caller(acl, caller.principal, caller.host):
                continue
            if acl.operation != operation and acl.operation != OP_ALL:
                continue
            if acl.permission == DENY:
                if acl.pattern_type == LITERAL:
                    if acl.resource_name == WILDCARD_RESOURCE:
                        return False
                    deny_literal.add(acl.resource_name)
                else:
                    deny_prefixed.add(acl.resource_name)
            elif acl.permission == ALLOW:
                if acl.pattern_type == LITERAL:
                    if acl.resource_name == WILDCARD_RESOURCE:
                        wildcard_allow = True
                    else:
                        allow_literal.add(acl.resource_name)
                else:
                    allow_prefixed.add(acl.resource_name)
        if wildcard_allow:
            return True
        for name in allow_literal:
            if name not in deny_literal and not _has_prefix_in(name, deny_prefixed):
                return True
        return any(not _has_prefix_in(name, deny_prefixed) for name in allow_prefixed)


def _has_prefix_in(name: str, prefixes: set[str]) -> bool:
    return any(name[:n] in prefixes for n in range(1, len(name) + 1))


def build_authorizer(
    settings: SecuritySettings,
    image: Callable[[], SecurityImage],
    ready: Callable[[], bool] = lambda: True,
) -> Authorizer:
    """The node's authorizer: ACL-based when ``security.authorizer_enable`` is on, else
    :class:`AllowEverything`. ``ready``: see :class:`StandardAuthorizer`."""
    if not settings.authorizer_enable:
        return AllowEverything()
    return StandardAuthorizer(
        image,
        super_users=settings.super_user_set,
        allow_everyone_if_no_acl_found=settings.allow_everyone_if_no_acl_found,
        ready=ready,
    )
