"""The authorizer contract: may this caller do this operation on this resource?

:class:`AllowEverything` is used when ``security.authorizer_enable`` is off (the default on a
loopback-only cluster). The ACL-based implementation with Kafka's StandardAuthorizer semantics
(super users, deny wins, implied operations, literal / wildcard / prefixed patterns,
``allow_everyone_if_no_acl_found``) lives in :mod:`raftka.common.security.acl_authorizer`.
"""

from __future__ import annotations

from typing import Protocol

from raftka.common.security.caller import Caller


class Authorizer(Protocol):
    """Answers authorization questions from the node's current metadata image."""

    @property
    def enabled(self) -> bool:
        """False for :class:`AllowEverything`: callers may skip building log context."""
        ...

    def authorize(
        self, caller: Caller, operation: int, resource_type: int, resource_name: str
    ) -> bool:
        """True when ``caller`` may do ``operation`` (an AclOperation) on the resource
        (an AclResourceType and its name; the cluster's name is "kafka-cluster")."""
        ...

    def authorize_any(self, caller: Caller, operation: int, resource_type: int) -> bool:
        """True when some ALLOW ACL could let ``caller`` do ``operation`` on at least one
        resource of the type and no DENY covers every such resource (Kafka's
        authorizeByResourceType, used by InitProducerId without a transactional id)."""
        ...


class AllowEverything:
    """The authorizer when authorization is off: everything is allowed."""

    enabled = False

    def authorize(
        self, caller: Caller, operation: int, resource_type: int, resource_name: str
    ) -> bool:
        return True

    def authorize_any(self, caller: Caller, operation: int, resource_type: int) -> bool:
        return True
