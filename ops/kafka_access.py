"""How Kafka's own clients reach a local cluster's Kafka listeners (``raftka up``).

A plaintext cluster's listeners are PLAINTEXT. A ``--tls`` cluster's are SASL_SSL with no
client certificate asked for (``kafka_ssl_client_auth = "none"``; the gRPC listeners still
require one): Kafka clients log in as ``User:admin``, the super user the admin certificate
names, with a SCRAM credential whose password is made here, kept in ``<tls>/kafka-admin.password``
(mode 0600, never printed) and set through the controllers once the cluster is up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from raftka.client.admin import AsyncAdmin
from raftka.ops.local_cluster import LocalCluster
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

KAFKA_USER = "admin"
PASSWORD_FILE = "kafka-admin.password"
TLS_BROKER_SETTINGS: dict[str, object] = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_ssl_client_auth": "none",
}
"""The ``[broker]`` keys of a ``--tls`` cluster's Kafka listeners."""


def password_file(cluster: LocalCluster) -> Path:
    return cluster.tls_dir / PASSWORD_FILE


def make_password(cluster: LocalCluster) -> Path:
    """A fresh password for the Kafka clients' user, in a file only its owner can read."""
    path = password_file(cluster)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(24) + "\n")
    return path


async def set_kafka_password(cluster: LocalCluster) -> None:
    """Give ``User:admin`` the password of :func:`make_password` (SCRAM-SHA-512 and -256)."""
    password = password_file(cluster).read_text().splitlines()[0]
    async with AsyncAdmin(cluster.bootstrap, security=cluster.client_security()) as admin:
        for mechanism in (SCRAM_SHA_512, SCRAM_SHA_256):
            await admin.set_user_password(KAFKA_USER, password, mechanism=mechanism)


def kafka_client_settings(cluster: LocalCluster) -> dict[str, str]:
    """librdkafka properties for the cluster's Kafka listeners (the password excepted)."""
    settings = {"bootstrap.servers": ",".join(cluster.kafka_bootstrap_servers)}
    if cluster.tls:
        settings.update(
            {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": "SCRAM-SHA-512",
                "sasl.username": KAFKA_USER,
                "ssl.ca.location": str(cluster.tls_dir / "ca.crt"),
            }
        )
    return settings


def kafka_summary(cluster: LocalCluster) -> list[str]:
    """What ``raftka up`` prints about the Kafka listeners."""
    if not cluster.kafka_bootstrap_servers:
        return []
    settings = kafka_client_settings(cluster)
    lines = [
        "Kafka clients (kcat, librdkafka, kafka-python; docs/kafka-protocol.md): "
        + " ".join(f"{k}={v}" for k, v in settings.items())
    ]
    if cluster.tls:
        path = password_file(cluster)
        options = " ".join(f"-X {k}={v}" for k, v in settings.items() if k != "bootstrap.servers")
        lines += [
            f"  sasl.password: the first line of {path} (User:admin, a super user; "
            "SCRAM-SHA-256 and PLAIN work too)",
            f"  kcat -b {settings['bootstrap.servers']} {options} "
            f'-X sasl.password="$(head -1 {path})" -L',
        ]
    return lines
