"""Kafka's admin clients against the Kafka listener of a real cluster (one controller, two
brokers): confluent-kafka's AdminClient grows a topic, describes topic and broker configs,
sets retention.ms incrementally (and is told INVALID_CONFIG for a bad value), describes the
cluster and runs a preferred election after kafka-python's reassignment made another replica
the preferred leader; kafka-python alters configs with the legacy AlterConfigs and describes
them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import ElectionType, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported, untyped
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from confluent_kafka.cimpl import NewPartitions, NewTopic
from kafka import TopicPartition as KafkaPythonPartition
from kafka.admin import ConfigResource as KafkaPythonResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonTopic

from raftka.ops.local_cluster import LocalCluster
from tests.conditions import wait_until
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster

pytestmark = pytest.mark.integration

TIMEOUT_S = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-admin"),
        controllers=1,
        brokers=2,
        kafka=True,
        # The preferred election below must be the test's, not the controller's own rebalance.
        controller_settings={"auto_leader_rebalance_enable": False},
    )
    try:
        yield c
    finally:
        stop_broker_cluster(c)


@pytest.fixture(scope="module")
def admin(cluster: LocalCluster) -> AdminClient:
    return AdminClient({"bootstrap.servers": ",".join(cluster.kafka_bootstrap_servers)})


def create(admin: AdminClient, name: str, partitions: int, replicas: int) -> None:
    for future in admin.create_topics([NewTopic(name, partitions, replicas)]).values():
        future.result(TIMEOUT_S)


def partitions_of(admin: AdminClient, topic: str) -> dict[int, tuple[int, list[int]]]:
    """partition -> (leader, replicas) as Metadata tells."""
    meta = admin.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
    return {p.id: (p.leader, list(p.replicas)) for p in meta.partitions.values()}


def test_create_partitions_grows_a_topic_and_metadata_shows_it(admin: AdminClient) -> None:
    create(admin, "grown", 1, 1)
    for future in admin.create_partitions([NewPartitions("grown", 3)]).values():
        future.result(TIMEOUT_S)
    wait_until(lambda: len(partitions_of(admin, "grown")) == 3, "3 partitions in Metadata")
    with pytest.raises(KafkaException) as refused:
        for future in admin.create_partitions([NewPartitions("grown", 2)]).values():
            future.result(TIMEOUT_S)
    assert refused.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_describe_configs_of_a_topic_and_a_broker(
    admin: AdminClient, cluster: LocalCluster
) -> None:
    create(admin, "described", 1, 1)
    broker_id = min(cluster.brokers)
    topic = ConfigResource(ResourceType.TOPIC, "described")
    broker = ConfigResource(ResourceType.BROKER, str(broker_id))
    found = {
        r.name: f.result(TIMEOUT_S) for r, f in admin.describe_configs([topic, broker]).items()
    }
    retention = found["described"]["retention.ms"]
    assert (retention.value, retention.source) == ("604800000", ConfigSource.DEFAULT_CONFIG.value)
    assert not retention.is_read_only
    listen = found[str(broker_id)]["broker.kafka_listen"]
    node = cluster.brokers[broker_id]
    assert listen.value.endswith(f":{node.kafka_port}")
    assert listen.source == ConfigSource.STATIC_BROKER_CONFIG.value and listen.is_read_only


def test_incremental_alter_sets_retention_and_refuses_a_bad_value(admin: AdminClient) -> None:
    create(admin, "altered", 1, 1)

    def alter(value: str) -> None:
        resource = ConfigResource(
            ResourceType.TOPIC,
            "altered",
            incremental_configs=[
                ConfigEntry("retention.ms", value, incremental_operation=AlterConfigOpType.SET)
            ],
        )
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(TIMEOUT_S)

    alter("3600000")
    (described,) = admin.describe_configs([ConfigResource(ResourceType.TOPIC, "altered")]).values()
    retention = described.result(TIMEOUT_S)["retention.ms"]
    assert retention.value == "3600000"
    assert retention.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    with pytest.raises(KafkaException) as refused:
        alter("an hour")
    error = refused.value.args[0]
    assert error.code() == KafkaError.INVALID_CONFIG
    assert "retention.ms" in error.str()


def test_describe_cluster_lists_the_brokers_and_the_controller(
    admin: AdminClient, cluster: LocalCluster
) -> None:
    # librdkafka describes the cluster with Metadata; kafka-python sends DescribeCluster.
    described = admin.describe_cluster().result(TIMEOUT_S)
    assert sorted(n.id for n in described.nodes) == sorted(cluster.brokers)
    assert {n.port for n in described.nodes} == {b.kafka_port for b in cluster.brokers.values()}
    assert described.controller is not None and described.controller.id in cluster.brokers
    kafka_admin = KafkaAdminClient(bootstrap_servers=",".join(cluster.kafka_bootstrap_servers))
    try:
        answer = kafka_admin.describe_cluster()
    finally:
        kafka_admin.close()
    assert answer["cluster_id"] == described.cluster_id
    assert answer["controller_id"] in cluster.brokers
    assert {(b["broker_id"], b["port"], b["is_fenced"]) for b in answer["brokers"]} == {
        (broker_id, node.kafka_port, False) for broker_id, node in cluster.brokers.items()
    }
    # Authorization is off: every cluster operation is allowed.
    assert "ALTER" in answer["authorized_operations"]


def test_preferred_election_after_the_preferred_replica_changed(
    admin: AdminClient, cluster: LocalCluster
) -> None:
    create(admin, "elected", 1, 2)
    wait_until(lambda: partitions_of(admin, "elected").get(0, (-1, []))[0] >= 0, "a leader")
    leader, replicas = partitions_of(admin, "elected")[0]
    assert leader == replicas[0]
    reordered = [replicas[1], replicas[0]]
    kafka_admin = KafkaAdminClient(bootstrap_servers=",".join(cluster.kafka_bootstrap_servers))
    try:
        moved = kafka_admin.alter_partition_reassignments(
            {KafkaPythonPartition("elected", 0): reordered}
        )
        assert moved == {KafkaPythonPartition("elected", 0): None}
        # Both replicas are in sync, so the new order is the replica list at once.
        assert kafka_admin.list_partition_reassignments() == {}
    finally:
        kafka_admin.close()
    wait_until(
        lambda: partitions_of(admin, "elected")[0] == (leader, reordered),
        "the reordered replicas with the old leader",
    )
    result = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition("elected", 0)])
    assert list(result.result(TIMEOUT_S).values()) == [None]
    wait_until(
        lambda: partitions_of(admin, "elected")[0][0] == reordered[0],
        "the preferred replica leading",
    )


def test_kafka_python_alters_configs_the_legacy_way_and_describes_them(
    cluster: LocalCluster,
) -> None:
    kafka_admin = KafkaAdminClient(bootstrap_servers=",".join(cluster.kafka_bootstrap_servers))
    try:
        kafka_admin.create_topics([KafkaPythonTopic("legacy", 1, 1)])
        answer = kafka_admin.alter_configs(
            [
                KafkaPythonResource(
                    ConfigResourceType.TOPIC,
                    "legacy",
                    configs={"retention.ms": "120000", "cleanup.policy": "compact"},
                )
            ],
            incremental=False,
        )
        assert answer == {"topic": {"legacy": "OK"}}
        described = kafka_admin.describe_configs(
            [KafkaPythonResource(ConfigResourceType.TOPIC, "legacy")]
        )
        modified = described["topic"]["legacy"]
        assert {name: c["value"] for name, c in modified.items()} == {
            "retention.ms": "120000",
            "cleanup.policy": "compact",
        }
        assert modified["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    finally:
        kafka_admin.close()
