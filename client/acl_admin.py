"""ACL administration over the controllers' AclService, in Python values.

ACLs are :class:`raftka.common.security.model.Acl` values and filters
:class:`raftka.common.security.acl_filters.AclFilter`; the constants of
``raftka.common.security.model`` (RESOURCE_TOPIC, OP_WRITE, ALLOW, LITERAL, ...) fill them::

    acl = Acl(RESOURCE_TOPIC, "orders", LITERAL, "User:alice", "*", OP_WRITE, ALLOW)
    (acl_id,) = await admin.create_acls([acl])
    for described in await admin.describe_acls(AclFilter(principal="User:alice")):
        print(described.id, described.acl)

Used by :class:`raftka.client.admin.AsyncAdmin` and by ``raftka acls``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.rpc.status import error_from_code
from raftka.common.security.acl_filters import MATCH_ALL, AclFilter
from raftka.common.security.model import Acl
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import security_pb2 as pb
from raftka.v1.security_pb2_grpc import AclServiceStub


@dataclass(frozen=True, slots=True)
class DescribedAcl:
    """An ACL as the cluster stores it, with its id."""

    id: str
    acl: Acl


@dataclass(frozen=True, slots=True)
class AclDeletion:
    """What one filter of a deletion removed, or why it was refused."""

    filter: AclFilter
    deleted: tuple[DescribedAcl, ...]
    error: RaftkaError | None = None


def _described(d: pb.AclDescription) -> DescribedAcl:
    return DescribedAcl(d.id, Acl.from_proto(d.binding))


class AclAdmin:
    """The three ACL calls; writes go to the active controller (redirected by the client)."""

    def __init__(self, client: ControllerClient) -> None:
        self._client = client

    async def create(self, acls: Sequence[Acl]) -> list[str | RaftkaError]:
        """Per ACL, in order: its id (a new one, or the existing one when the cluster already
        has this ACL) or the error that refused it."""
        request = pb.CreateAclsRequest(creations=[a.to_proto() for a in acls])
        response: pb.CreateAclsResponse = await self._client.call_service(
            AclServiceStub, lambda s, t: s.CreateAcls(request, timeout=t)
        )
        return [
            r.id if r.error_code == cpb.NONE else error_from_code(r.error_code, r.error_message)
            for r in response.results
        ]

    async def describe(
        self, acl_filter: AclFilter = MATCH_ALL, *, any_controller: bool = False
    ) -> list[DescribedAcl]:
        """The ACLs the filter selects, sorted by resource, principal, host and operation.
        With ``any_controller``, the first controller that answers does, from its own
        committed metadata (it may lag the active controller's by a moment)."""
        request = pb.DescribeAclsRequest(filter=acl_filter.to_proto())
        response: pb.DescribeAclsResponse = await self._client.call_service(
            AclServiceStub,
            lambda s, t: s.DescribeAcls(request, timeout=t),
            any_controller=any_controller,
        )
        if response.error_code != cpb.NONE:
            raise error_from_code(response.error_code, response.error_message)
        return [_described(d) for d in response.acls]

    async def delete(self, filters: Sequence[AclFilter]) -> list[AclDeletion]:
        """Per filter, in order: the ACLs it removed (an ACL matched by several filters is
        reported under the first), or the error that refused the filter."""
        request = pb.DeleteAclsRequest(filters=[f.to_proto() for f in filters])
        response: pb.DeleteAclsResponse = await self._client.call_service(
            AclServiceStub, lambda s, t: s.DeleteAcls(request, timeout=t)
        )
        return [
            AclDeletion(
                filter=f,
                deleted=tuple(_described(d) for d in r.deleted),
                error=(
                    None
                    if r.error_code == cpb.NONE
                    else error_from_code(r.error_code, r.error_message)
                ),
            )
            for f, r in zip(filters, response.results, strict=True)
        ]
