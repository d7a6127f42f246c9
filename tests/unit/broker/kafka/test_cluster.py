"""DescribeCluster over the Kafka listener: brokers by their Kafka listener, the controller
id, authorized operations, and the cluster permission it needs."""

from __future__ import annotations

import pytest
from kio.schema.errors import ErrorCode

from raftka.broker.kafka.cluster import DESCRIBE_CLUSTER_KEY, DescribeClusterHandler
from raftka.common.ids import BrokerEpoch, BrokerId
from raftka.common.metadata.model import BrokerEndpoint, BrokerRegistration
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_ALTER,
    OP_DESCRIBE,
    RESOURCE_CLUSTER,
)
from tests.unit.broker.kafka.admin_fakes import (
    ALICE,
    BROKER_ID,
    FakeImage,
    backend,
    context,
    denying_guard,
    encodes,
    request,
    run_as,
    versions,
)


def registration(broker_id: int, *, fenced: bool = False, kafka: bool = True) -> BrokerRegistration:
    endpoints = [BrokerEndpoint("CLIENT", "127.0.0.1", 9000 + broker_id)]
    if kafka:
        endpoints.append(BrokerEndpoint("KAFKA", "127.0.0.1", 9100 + broker_id))
    return BrokerRegistration(
        broker_id=BrokerId(broker_id),
        epoch=BrokerEpoch(1),
        incarnation_id=f"i-{broker_id}",
        endpoints=tuple(endpoints),
        rack="r1" if broker_id == 1 else "",
        fenced=fenced,
    )


IMAGE = FakeImage(
    {
        1: registration(1),
        2: registration(2, fenced=True),
        3: registration(3, kafka=False),
        4: registration(4),
    }
)


@pytest.mark.parametrize("version", versions(0, 2))
def test_describe_cluster_lists_brokers_by_their_kafka_listener(version: int) -> None:
    answer = run_as(
        ALICE,
        DescribeClusterHandler(backend(image=IMAGE))(
            request(
                DESCRIBE_CLUSTER_KEY,
                version,
                include_cluster_authorized_operations=True,
                endpoint_type=1,
                include_fenced_brokers=True,
            ),
            context(DESCRIBE_CLUSTER_KEY, version),
        ),
    )
    encodes(answer)
    assert answer.error_code == ErrorCode.none
    assert (answer.cluster_id, answer.controller_id) == ("cluster-1", BROKER_ID)
    listed = [(b.broker_id, b.port, b.rack) for b in answer.brokers]
    # v2 asked for fenced brokers too; earlier versions cannot say which are fenced.
    expected = [(1, 9101, "r1"), (2, 9102, None), (4, 9104, None)]
    assert listed == (expected if version >= 2 else [expected[0], expected[2]])
    # Authorization is off: every cluster operation is allowed.
    assert answer.cluster_authorized_operations & (1 << OP_ALTER)


def test_describe_cluster_needs_describe_on_the_cluster_and_reports_what_is_allowed() -> None:
    handler = DescribeClusterHandler(backend(image=IMAGE, guard=denying_guard()))
    asked = request(DESCRIBE_CLUSTER_KEY, 1, include_cluster_authorized_operations=True)
    answer = run_as(ALICE, handler(asked, context(DESCRIBE_CLUSTER_KEY, 1)))
    assert answer.error_code == ErrorCode.cluster_authorization_failed
    assert answer.brokers == ()
    guard = denying_guard((ALICE, OP_DESCRIBE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME))
    handler = DescribeClusterHandler(backend(image=IMAGE, guard=guard))
    answer = run_as(ALICE, handler(asked, context(DESCRIBE_CLUSTER_KEY, 1)))
    assert answer.error_code == ErrorCode.none
    assert answer.cluster_authorized_operations == 1 << OP_DESCRIBE


def test_controller_endpoints_are_not_served_by_a_broker() -> None:
    answer = run_as(
        ALICE,
        DescribeClusterHandler(backend(image=IMAGE))(
            request(
                DESCRIBE_CLUSTER_KEY,
                1,
                include_cluster_authorized_operations=False,
                endpoint_type=2,
            ),
            context(DESCRIBE_CLUSTER_KEY, 1),
        ),
    )
    encodes(answer)
    assert answer.error_code == ErrorCode.unsupported_endpoint_type and answer.brokers == ()
