"""Kafka's own clients against a secured Kafka listener (real processes, TLS, the authorizer on).

A SASL_SSL cluster (client listeners ask for no certificate): confluent-kafka authenticates
with SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN against users' stored credentials, produces and
consumes; a wrong password is refused with an authentication error while others go on being
served; a principal without WRITE gets TOPIC_AUTHORIZATION_FAILED, one without DESCRIBE does
not see the topic; nothing but ApiVersions and SASL is served before authentication.
An SSL cluster (client certificates required): the principal is the certificate's."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import struct
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import ClusterAuthorizationFailedError

from raftka.client.admin import AsyncAdmin
from raftka.common.security.model import (
    ALLOW,
    CLUSTER_RESOURCE_NAME,
    LITERAL,
    OP_ALTER,
    OP_DESCRIBE,
    OP_IDEMPOTENT_WRITE,
    OP_READ,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.ops.local_cluster import LocalCluster
from raftka.v1.common_pb2 import NONE, SCRAM_SHA_256, SCRAM_SHA_512
from tests.conditions import wait_until
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster
from tests.integration.support.identities import identity

pytestmark = pytest.mark.integration

TOPIC = "secure"
GROUP = "readers"
PARTITIONS = 2
RECORDS = 10
PASSWORDS = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
    "ops": "ops-secret",
}
Config = dict[str, Any]
"""librdkafka settings."""
# Kafka's codes, as the clients report them.
TOPIC_AUTHORIZATION_FAILED = 29


def acl(resource_type: int, name: str, who: str, operation: int) -> Acl:
    return Acl(resource_type, name, LITERAL, f"User:{who}", "*", operation, ALLOW)


def bootstrap(cluster: LocalCluster) -> str:
    return ",".join(cluster.kafka_bootstrap_servers)


def sasl(cluster: LocalCluster, user: str, mechanism: str = "SCRAM-SHA-512", **more: Any) -> Config:
    return {
        "bootstrap.servers": bootstrap(cluster),
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": PASSWORDS.get(user, "?"),
        "ssl.ca.location": str(cluster.tls_dir / "ca.crt"),
        **more,
    }


async def prepare(cluster: LocalCluster) -> None:
    async with AsyncAdmin(cluster.bootstrap, security=cluster.client_security()) as admin:
        result = await admin.create_topic(TOPIC, PARTITIONS, 1)
        assert result.error_code == NONE, result.error_message
        for user, password in PASSWORDS.items():
            await admin.set_user_password(user, password, mechanism=SCRAM_SHA_512, iterations=4096)
        await admin.set_user_password(
            "alice", PASSWORDS["alice"], mechanism=SCRAM_SHA_256, iterations=4096
        )
        await admin.create_acls(
            [
                acl(RESOURCE_TOPIC, TOPIC, "alice", OP_WRITE),
                acl(RESOURCE_TOPIC, TOPIC, "alice", OP_READ),
                acl(RESOURCE_GROUP, GROUP, "alice", OP_READ),
                acl(RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, "alice", OP_IDEMPOTENT_WRITE),
                acl(RESOURCE_TOPIC, TOPIC, "bob", OP_DESCRIBE),
                acl(RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, "ops", OP_ALTER),
                acl(RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME, "ops", OP_DESCRIBE),
            ]
        )


def sees_topic(config: Config) -> bool:
    """Whether a client with ``config`` authenticates and sees TOPIC with its leaders."""
    admin = AdminClient(config)
    try:
        topics = admin.list_topics(timeout=2).topics
    except Exception:  # KafkaException: not authenticated / not known yet
        return False
    found = topics.get(TOPIC)
    return (
        found is not None
        and found.error is None
        and len(found.partitions) == PARTITIONS
        and all(p.leader >= 0 for p in found.partitions.values())
    )


@pytest.fixture(scope="module")
def sasl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-sasl"),
        controllers=1,
        brokers=1,
        tls=True,
        split_listeners=True,
        kafka=True,
    )
    try:
        asyncio.run(prepare(cluster))
        # The broker learns users and ACLs from the metadata log.
        wait_until(lambda: sees_topic(sasl(cluster, "alice")), "alice sees the topic")
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def produce(config: Config, count: int = RECORDS, prefix: str = "v") -> list[Any]:
    """Produce ``count`` keyed records; the delivery reports' errors (None: delivered)."""
    producer = Producer({**config, "partitioner": "murmur2_random", "linger.ms": 5})
    outcomes: list[Any] = []
    for i in range(count):
        producer.produce(
            TOPIC,
            key=f"k{i}".encode(),
            value=f"{prefix}-{i}".encode(),
            on_delivery=lambda error, _message: outcomes.append(error),
        )
    assert producer.flush(20) == 0
    return outcomes


def consume(config: Config, expected: set[bytes]) -> set[bytes]:
    consumer = Consumer({**config, "group.id": GROUP, "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)])
    got: set[bytes] = set()
    deadline = time.monotonic() + 20
    try:
        while not expected <= got and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value = message.value()
            assert value is not None
            got.add(value)
    finally:
        consumer.close()
    return got


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"])
def test_sasl_clients_produce_and_consume(sasl_cluster: LocalCluster, mechanism: str) -> None:
    config = sasl(sasl_cluster, "alice", mechanism)
    outcomes = produce({**config, "enable.idempotence": True, "acks": "all"}, prefix=mechanism)
    assert outcomes == [None] * RECORDS
    expected = {f"{mechanism}-{i}".encode() for i in range(RECORDS)}
    assert expected <= consume(config, expected)


def test_a_wrong_password_is_refused_and_others_are_served(sasl_cluster: LocalCluster) -> None:
    errors: list[KafkaError] = []
    config = sasl(sasl_cluster, "alice", error_cb=errors.append)
    config["sasl.password"] = "not-the-password"
    producer = Producer(config)
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "the client reported no error"
    assert errors[0].code() == KafkaError._AUTHENTICATION, errors[0]
    (broker_id,) = sasl_cluster.brokers
    refused = [
        line
        for line in sasl_cluster.log_tail(broker_id, 400).splitlines()
        if "kafka_connection_closed" in line and "authentication_failed" in line
    ]
    assert refused and "alice" in refused[0] and "not-the-password" not in refused[0]
    # An unknown user fails alike (no user enumeration), and the broker serves others.
    assert not sees_topic(sasl(sasl_cluster, "mallory"))
    assert sees_topic(sasl(sasl_cluster, "alice", "SCRAM-SHA-256"))


def test_without_write_a_producer_gets_topic_authorization_failed(
    sasl_cluster: LocalCluster,
) -> None:
    outcomes = produce({**sasl(sasl_cluster, "bob"), "enable.idempotence": False}, count=1)
    assert [e.code() for e in outcomes] == [TOPIC_AUTHORIZATION_FAILED], outcomes


def test_without_describe_the_topic_is_not_in_metadata(sasl_cluster: LocalCluster) -> None:
    assert sees_topic(sasl(sasl_cluster, "bob"))  # DESCRIBE
    carol = AdminClient(sasl(sasl_cluster, "carol"))
    assert TOPIC not in carol.list_topics(timeout=10).topics
    named = carol.list_topics(topic=TOPIC, timeout=10).topics[TOPIC]
    assert named.error is not None and named.error.code() == TOPIC_AUTHORIZATION_FAILED


def test_only_sasl_is_served_before_authentication(sasl_cluster: LocalCluster) -> None:
    host, port = sasl_cluster.kafka_bootstrap_servers[0].rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(sasl_cluster.tls_dir / "ca.crt"))
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        # Metadata v1 for every topic: API key 3, version 1, correlation id 7, client id "x",
        # topics null (-1).
        body = struct.pack(">hhih", 3, 1, 7, 1) + b"x" + struct.pack(">i", -1)
        tls.sendall(struct.pack(">i", len(body)) + body)
        assert tls.recv(4) == b"", "the broker answered a request before authentication"


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat_lists_metadata_over_sasl_ssl(sasl_cluster: LocalCluster) -> None:
    """Debian's kcat (librdkafka 2.0.2) with SCRAM-SHA-256."""
    options = sasl(sasl_cluster, "alice", "SCRAM-SHA-256")
    servers = options.pop("bootstrap.servers")
    args = [a for k, v in options.items() for a in ("-X", f"{k}={v}")]
    done = subprocess.run(
        ["kcat", "-b", servers, *args, "-L", "-t", TOPIC, "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert f'topic "{TOPIC}" with {PARTITIONS} partitions' in done.stdout, done.stderr


def test_aiokafka_produces_over_sasl_ssl(sasl_cluster: LocalCluster) -> None:
    """aiokafka's own SCRAM client (SCRAM-SHA-512), idempotent."""

    async def send() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap(sasl_cluster),
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_plain_username="alice",
            sasl_plain_password=PASSWORDS["alice"],
            ssl_context=create_ssl_context(cafile=str(sasl_cluster.tls_dir / "ca.crt")),
            enable_idempotence=True,
        )
        await producer.start()
        try:
            sent = await producer.send_and_wait(TOPIC, b"by aiokafka", key=b"k0")
        finally:
            await producer.stop()
        return int(sent.offset)

    assert asyncio.run(send()) >= 0


def kafka_python_admin(cluster: LocalCluster, user: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap(cluster),
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username=user,
        sasl_plain_password=PASSWORDS[user],
        ssl_cafile=str(cluster.tls_dir / "ca.crt"),
        request_timeout_ms=10_000,
    )


def test_kafka_python_admin_creates_and_describes_acls(sasl_cluster: LocalCluster) -> None:
    pattern = ResourcePattern(ResourceType.TOPIC, "audit-", ACLResourcePatternType.PREFIXED)
    wanted = ACL("User:dave", "*", ACLOperation.READ, ACLPermissionType.ALLOW, pattern)
    every = ACLFilter(
        None,
        None,
        ACLOperation.ANY,
        ACLPermissionType.ANY,
        ResourcePatternFilter(ResourceType.TOPIC, "audit-", ACLResourcePatternType.PREFIXED),
    )
    ops = kafka_python_admin(sasl_cluster, "ops")
    try:
        created = ops.create_acls([wanted])
        assert created["succeeded"] == [wanted] and created["failed"] == [], created
        described, _error = ops.describe_acls(every)
        assert described == [wanted], described
    finally:
        ops.close()
    # Bob may not: DESCRIBE on the cluster is asked of him, not of the broker forwarding.
    bob = kafka_python_admin(sasl_cluster, "bob")
    try:
        with pytest.raises(ClusterAuthorizationFailedError):
            bob.describe_acls(every)
    finally:
        bob.close()


@pytest.fixture(scope="module")
def ssl_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = start_broker_cluster(
        tmp_path_factory.mktemp("kafka-ssl"),
        controllers=1,
        brokers=1,
        tls=True,
        kafka=True,
        broker_settings={"kafka_security_protocol": "SSL"},
    )
    try:
        asyncio.run(prepare(cluster))
        yield cluster
    finally:
        stop_broker_cluster(cluster)


def certificate(cluster: LocalCluster, name: str | None) -> Config:
    """SSL settings with ``name``'s certificate (the admin's when None)."""
    files = cluster.client_security() if name is None else identity(cluster, name)
    return {
        "bootstrap.servers": bootstrap(cluster),
        "security.protocol": "SSL",
        "ssl.ca.location": files.ca_file,
        "ssl.certificate.location": files.cert_file,
        "ssl.key.location": files.key_file,
    }


def test_ssl_principal_is_the_client_certificates(ssl_cluster: LocalCluster) -> None:
    admin = certificate(ssl_cluster, None)  # User:admin, a super user
    wait_until(lambda: sees_topic(admin), "the admin sees the topic")
    assert produce({**admin, "enable.idempotence": True, "acks": "all"}) == [None] * RECORDS
    expected = {f"v-{i}".encode() for i in range(RECORDS)}
    assert expected <= consume(admin, expected)
    # User:dave (his certificate's CN) has no ACL: refused, so the principal is his.
    outcomes = produce({**certificate(ssl_cluster, "dave"), "enable.idempotence": False}, 1)
    assert [e.code() for e in outcomes] == [TOPIC_AUTHORIZATION_FAILED], outcomes
    assert not sees_topic(certificate(ssl_cluster, "dave"))
