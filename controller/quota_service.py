"""The gRPC QuotaService: client quotas, set on the active controller and read from its image.

AlterClientQuotas hands a plan (``control/quotas.py``) to the active controller and answers
once its ClientQuotaRecords commit; DescribeClientQuotas reads the committed image. Brokers
apply the records to their own images and throttle by them (``broker/quotas``).
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from raftka.common.limits import require_items
from raftka.common.rpc.status import rpc_errors
from raftka.controller.active import ActiveController
from raftka.controller.control.quotas import alter_client_quotas, describe_client_quotas
from raftka.v1 import security_pb2 as pb
from raftka.v1.security_pb2_grpc import QuotaServiceServicer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class QuotaServicer(QuotaServiceServicer):
    def __init__(self, active: ActiveController) -> None:
        self._active = active

    @rpc_errors
    async def AlterClientQuotas(
        self, request: pb.AlterClientQuotasRequest, context: Context
    ) -> pb.AlterClientQuotasResponse:
        require_items(len(request.entries), "entries")
        return await self._active.write(lambda image, _i: alter_client_quotas(image, request))

    @rpc_errors
    async def DescribeClientQuotas(
        self, request: pb.DescribeClientQuotasRequest, context: Context
    ) -> pb.DescribeClientQuotasResponse:
        require_items(len(request.components), "components", empty_means_all=True)
        return describe_client_quotas(self._active.committed_image(), request)
