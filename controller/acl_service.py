"""The gRPC AclService: CreateAcls and DeleteAcls on the active controller, DescribeAcls on any.

Writes follow ControllerService's pattern: bound the request, plan records against the working
image (raftka.controller.control.acls), answer once they commit. DescribeAcls answers from the
committed image of the controller asked, so every controller can be checked for the same ACLs.
With ``security.authorizer_enable`` off nothing would enforce ACLs, so, as Kafka does, creations
and deletions answer SECURITY_DISABLED per item and DescribeAcls fails as a whole.
Authorization of these RPCs (ALTER / DESCRIBE on the cluster) is not done here but by the
server's enforcement layer, like for every other RPC.
"""

from __future__ import annotations

import random
from typing import Any, TypeAlias

import grpc

from raftka.common.limits import require_items
from raftka.common.rpc.status import rpc_errors
from raftka.common.security_errors import SecurityDisabledError
from raftka.controller.active import ActiveController
from raftka.controller.control.acls import create_acls, delete_acls, describe_acls
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.v1 import security_pb2 as pb
from raftka.v1.security_pb2_grpc import AclServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

DISABLED_MESSAGE = (
    "ACLs are not enforced on this cluster (security.authorizer_enable is false): set it to "
    "true on every node to manage ACLs"
)


class AclServicer(AclServiceServicer):
    def __init__(
        self, *, active: ActiveController, state: MetadataStateMachine, enabled: bool
    ) -> None:
        self._active = active
        self._state = state
        self._enabled = enabled
        self._rng = random.Random()

    @rpc_errors
    async def CreateAcls(
        self, request: pb.CreateAclsRequest, context: Context
    ) -> pb.CreateAclsResponse:
        require_items(len(request.creations), "creations")
        if not self._enabled:
            return pb.CreateAclsResponse(
                results=[_disabled(pb.AclCreationResult) for _ in request.creations]
            )
        return await self._active.write(lambda image, _i: create_acls(image, request, self._rng))

    @rpc_errors
    async def DescribeAcls(
        self, request: pb.DescribeAclsRequest, context: Context
    ) -> pb.DescribeAclsResponse:
        if not self._enabled:
            raise SecurityDisabledError(DISABLED_MESSAGE)
        return describe_acls(self._state.image, request)

    @rpc_errors
    async def DeleteAcls(
        self, request: pb.DeleteAclsRequest, context: Context
    ) -> pb.DeleteAclsResponse:
        require_items(len(request.filters), "filters")
        if not self._enabled:
            return pb.DeleteAclsResponse(
                results=[_disabled(pb.AclDeletionResult) for _ in request.filters]
            )
        return await self._active.write(lambda image, _i: delete_acls(image, request))


def _disabled(result_type: Any) -> Any:
    return result_type(error_code=SecurityDisabledError.code, error_message=DISABLED_MESSAGE)
