"""DescribeCluster (v0-v2): the brokers' Kafka listeners and the cluster id, from this
broker's metadata image, as Metadata gives them.

``controller_id`` is this broker, as in Metadata: Kafka's clients send admin requests there and
it forwards them to the active controller (Kafka's brokers, too, name a broker when asked for
the BROKERS endpoint type). The CONTROLLERS endpoint type (v1+) is not served by a broker:
UNSUPPORTED_ENDPOINT_TYPE, as Kafka's brokers answer. The caller needs DESCRIBE on the cluster,
as for Raftka's own DescribeCluster; the operations it may do on the cluster are reported when
asked (Kafka's bit per AclOperation)."""

from __future__ import annotations

from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import (
    NO_THROTTLE,
    UNKNOWN_AUTHORIZED_OPERATIONS,
    build,
    error_of,
    nested,
    response_type,
)
from raftka.common.metadata.model import KAFKA_LISTENER
from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    OP_ALTER_CONFIGS,
    OP_CLUSTER_ACTION,
    OP_CREATE,
    OP_DESCRIBE,
    OP_DESCRIBE_CONFIGS,
    OP_IDEMPOTENT_WRITE,
    RESOURCE_CLUSTER,
)

DESCRIBE_CLUSTER_KEY = 60
BROKERS_ENDPOINT = 1
"""Kafka's EndpointType: brokers (the default); 2 is controllers."""

CLUSTER_OPERATIONS = (
    OP_CREATE,
    OP_ALTER,
    OP_DESCRIBE,
    OP_CLUSTER_ACTION,
    OP_DESCRIBE_CONFIGS,
    OP_ALTER_CONFIGS,
    OP_IDEMPOTENT_WRITE,
)
"""The operations a cluster resource has (Kafka's AclEntry.supportedOperations(CLUSTER))."""


def cluster_authorized_operations(guard: AccessGuard) -> int:
    """Kafka's bit field of the cluster operations the caller may do (bit n: AclOperation n)."""
    bits = 0
    for operation in CLUSTER_OPERATIONS:
        if guard.allowed_quietly(operation, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME):
            bits |= 1 << operation
    return bits


class DescribeClusterHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(DESCRIBE_CLUSTER_KEY, context.api_version)
        endpoint_type = int(getattr(request, "endpoint_type", BROKERS_ENDPOINT))
        common = {
            "throttle_time": NO_THROTTLE,
            "endpoint_type": endpoint_type,
            "cluster_id": self._backend.cluster_id,
            "controller_id": -1,
            "brokers": (),
            "cluster_authorized_operations": UNKNOWN_AUTHORIZED_OPERATIONS,
        }
        denial = self._backend.guard.denial(OP_DESCRIBE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
        if denial is not None:
            return build(
                answer_type, error_code=error_of(denial), error_message=denial.message, **common
            )
        if endpoint_type != BROKERS_ENDPOINT:
            return build(
                answer_type,
                error_code=ErrorCode.unsupported_endpoint_type,
                error_message=(
                    f"endpoint type {endpoint_type} is not served by a broker: only brokers "
                    f"({BROKERS_ENDPOINT}) are; Raftka's controllers speak gRPC only"
                ),
                **common,
            )
        common["controller_id"] = self._backend.broker_id
        common["brokers"] = self._brokers(
            answer_type, bool(getattr(request, "include_fenced_brokers", False))
        )
        if request.include_cluster_authorized_operations:
            common["cluster_authorized_operations"] = cluster_authorized_operations(
                self._backend.guard
            )
        return build(answer_type, error_code=ErrorCode.none, error_message=None, **common)

    def _brokers(self, answer_type: type[Any], include_fenced: bool) -> tuple[Any, ...]:
        broker_type = nested(answer_type, "DescribeClusterBroker")
        image = self._backend.image()
        brokers = []
        for broker_id in sorted(image.brokers):
            reg = image.brokers[broker_id]
            endpoint = reg.endpoint(KAFKA_LISTENER)
            if endpoint is None or (reg.fenced and not include_fenced):
                continue
            brokers.append(
                build(
                    broker_type,
                    broker_id=reg.broker_id,
                    host=endpoint.host,
                    port=endpoint.port,
                    rack=reg.rack or None,
                    is_fenced=reg.fenced,
                )
            )
        return tuple(brokers)
