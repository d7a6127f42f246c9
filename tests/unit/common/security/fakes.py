"""A small authorizer for tests: an explicit set of allowed (principal, operation, type, name)."""

from __future__ import annotations

from collections.abc import Iterable

from raftka.common.security.caller import Caller
from raftka.common.security.model import CLUSTER_RESOURCE_NAME, OP_CLUSTER_ACTION, RESOURCE_CLUSTER

Grant = tuple[str, int, int, str]

NODE = "User:node-1"


class FakeAuthorizer:
    """Allows exactly ``grants``; ``NODE`` has CLUSTER_ACTION (and nothing else)."""

    enabled = True

    def __init__(self, grants: Iterable[Grant] = ()) -> None:
        self.grants = set(grants) | {
            (NODE, OP_CLUSTER_ACTION, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
        }

    def authorize(self, caller: Caller, operation: int, resource_type: int, name: str) -> bool:
        return (caller.principal, operation, resource_type, name) in self.grants

    def authorize_any(self, caller: Caller, operation: int, resource_type: int) -> bool:
        return any(
            (p, o, t) == (caller.principal, operation, resource_type) for p, o, t, _ in self.grants
        )


def caller(principal: str) -> Caller:
    return Caller(principal=principal, host="10.0.0.9", authenticated=True, request_id="r-1")
