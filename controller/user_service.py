"""The gRPC UserService of a controller: credential writes through the active controller,
reads from the committed image."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from raftka.common.limits import require_items
from raftka.common.rpc.status import rpc_errors
from raftka.controller.active import ActiveController
from raftka.controller.control.users import alter_credentials, describe_credentials
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.v1 import security_pb2 as pb
from raftka.v1.security_pb2_grpc import UserServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class UserServicer(UserServiceServicer):
    def __init__(self, active: ActiveController, state: MetadataStateMachine) -> None:
        self._active = active
        self._state = state

    @rpc_errors
    async def AlterUserScramCredentials(
        self, request: pb.AlterUserScramCredentialsRequest, context: Context
    ) -> pb.AlterUserScramCredentialsResponse:
        require_items(len(request.upsertions) + len(request.deletions), "upsertions/deletions")
        return await self._active.write(lambda image, _i: alter_credentials(image, request))

    @rpc_errors
    async def DescribeUserScramCredentials(
        self, request: pb.DescribeUserScramCredentialsRequest, context: Context
    ) -> pb.DescribeUserScramCredentialsResponse:
        require_items(len(request.names), "names", empty_means_all=True)
        return describe_credentials(self._state.image, request)
