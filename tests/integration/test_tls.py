"""TLS and mTLS with real processes: the cluster runs secured end to end, and callers without
a valid certificate are refused at the handshake, changing nothing. Certificates rotate by
replacing files, without a restart."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from raftka.client.admin import AsyncAdmin
from raftka.client.consumer.consumer import AsyncConsumer
from raftka.client.producer.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.security.model import (
    ALLOW,
    LITERAL,
    OP_DESCRIBE,
    RESOURCE_TOPIC,
    Acl,
)
from raftka.common.security.tls import ChannelSecurity, bearer_token
from raftka.common.security_errors import AuthenticationFailedError
from raftka.ops.local_cluster import LocalCluster
from raftka.ops.tls_certs import CertificateAuthority, certificate_serial
from tests.conditions import eventually
from tests.integration.support.brokers import start_broker_cluster, stop_broker_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One controller and two brokers, every listener and channel TLS with mTLS required."""
    c = start_broker_cluster(tmp_path_factory.mktemp("tls"), controllers=1, brokers=2, tls=True)
    try:
        yield c
    finally:
        stop_broker_cluster(c)


def ssl_settings(cluster: LocalCluster) -> dict[str, Any]:
    d = cluster.tls_dir
    return {
        "security_protocol": "SSL",
        "ssl_ca_location": str(d / "ca.crt"),
        "ssl_certificate_location": str(d / "admin.crt"),
        "ssl_key_location": str(d / "admin.key"),
    }


def test_produce_and_consume_over_mtls(tls_cluster: LocalCluster) -> None:
    async def main() -> None:
        async with AsyncAdmin(tls_cluster.bootstrap, security=tls_cluster.client_security()) as a:
            # Replication factor 2: the follower's fetches are broker-to-broker TLS calls.
            result = await a.create_topic("secure", 1, 2)
            assert result.error_code == 0, result.error_message
        settings = ssl_settings(tls_cluster)
        async with AsyncProducer(bootstrap_servers=tls_cluster.bootstrap_servers, **settings) as p:
            futures = [await p.send("secure", b"v%d" % i) for i in range(20)]
            await asyncio.gather(*futures)
        async with AsyncConsumer(
            bootstrap_servers=tls_cluster.bootstrap_servers, **settings
        ) as consumer:
            tp = TopicPartition("secure", 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[bytes] = []

            async def all_read() -> bool | None:
                got.extend(r.value or b"" for r in await consumer.poll(timeout_ms=200))
                return True if len(got) >= 20 else None

            await eventually(all_read, what="20 records consumed over TLS")
        assert got == [b"v%d" % i for i in range(20)]

    asyncio.run(main())


def other_ca_cert(tmp_path: Path) -> ChannelSecurity:
    other = CertificateAuthority.create(tmp_path / "other-ca")
    files = other.issue(tmp_path / "other-ca", "admin")  # same name, wrong issuer
    return ChannelSecurity(tls=True, ca_file="", cert_file=str(files.cert), key_file=str(files.key))


def test_callers_without_a_valid_certificate_are_refused(
    tls_cluster: LocalCluster, tmp_path: Path
) -> None:
    ca = CertificateAuthority.load(tls_cluster.tls_dir)
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue(
        tmp_path,
        "admin",
        not_before=now - datetime.timedelta(days=2),
        not_after=now - datetime.timedelta(days=1),
    )
    other = other_ca_cert(tmp_path)
    ca_file = str(tls_cluster.tls_dir / "ca.crt")
    refused = {
        "plaintext": ChannelSecurity(),
        "no certificate": ChannelSecurity(tls=True, ca_file=ca_file),
        "another CA": ChannelSecurity(
            tls=True, ca_file=ca_file, cert_file=other.cert_file, key_file=other.key_file
        ),
        "expired": ChannelSecurity(
            tls=True, ca_file=ca_file, cert_file=str(expired.cert), key_file=str(expired.key)
        ),
    }

    async def main() -> None:
        async with AsyncAdmin(tls_cluster.bootstrap, security=tls_cluster.client_security()) as a:
            before = sorted(await a.list_topics())
            for what, security in refused.items():
                async with AsyncAdmin(
                    tls_cluster.bootstrap, security=security, timeout_s=2.0
                ) as intruder:
                    # The handshake fails: the call never reaches a handler.
                    with pytest.raises(RaftkaError, match="cannot reach"):
                        await intruder.create_topic(f"evil-{what.replace(' ', '-')}", 1, 1)
            assert sorted(await a.list_topics()) == before  # nothing changed

    asyncio.run(main())


def peer_serial(address: str, cluster: LocalCluster) -> int:
    """The serial number of the certificate a node presents on a new connection."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(cluster.tls_dir / "ca.crt"))
    context.load_cert_chain(cluster.tls_dir / "admin.crt", cluster.tls_dir / "admin.key")
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=5) as sock,
        context.wrap_socket(sock, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_replaced_certificate_is_served_without_a_restart(tls_cluster: LocalCluster) -> None:
    broker_id = min(tls_cluster.brokers)
    node = tls_cluster.node(broker_id)
    pid = node.process.pid if node.process else None
    cert_file = tls_cluster.tls_dir / f"node-{broker_id}.crt"
    old = certificate_serial(cert_file)
    assert peer_serial(node.address, tls_cluster) == old
    ca = CertificateAuthority.load(tls_cluster.tls_dir)
    ca.issue(tls_cluster.tls_dir, f"node-{broker_id}")  # same files, new key and serial
    new = certificate_serial(cert_file)
    assert new != old

    async def serves_new() -> bool | None:
        return True if peer_serial(node.address, tls_cluster) == new else None

    asyncio.run(eventually(serves_new, timeout_s=10, what="the broker serves its new certificate"))
    assert node.process is not None and node.process.pid == pid and node.running


def test_bearer_tokens_are_checked_against_stored_credentials(tls_cluster: LocalCluster) -> None:
    """As in Kafka's SASL_SSL, a token names the principal even on an mTLS connection; a wrong
    one is refused whatever certificate comes with it."""

    async def main() -> None:
        admin_security = tls_cluster.client_security()
        async with AsyncAdmin(tls_cluster.bootstrap, security=admin_security) as a:
            await a.set_user_password("alice", "correct horse")
            described = await a.describe_users(["alice"])
            assert [c.iterations for c in described[0].credentials] == [8192]
            before = sorted(await a.list_topics())
            # The nodes authorize: alice sees only the topics she may describe.
            await a.create_acls(
                [Acl(RESOURCE_TOPIC, "*", LITERAL, "User:alice", "*", OP_DESCRIBE, ALLOW)]
            )
        wrong = tls_cluster.client_security(token=bearer_token("alice", "wrong"))
        async with AsyncAdmin(tls_cluster.bootstrap, security=wrong, timeout_s=3.0) as bad:
            with pytest.raises(AuthenticationFailedError, match="alice"):
                await bad.create_topic("by-a-wrong-token", 1, 1)
        good = tls_cluster.client_security(token=bearer_token("alice", "correct horse"))
        async with AsyncAdmin(tls_cluster.bootstrap, security=good) as ok:
            # Brokers learn the credential from the metadata log: eventually accepted there too.
            async def listed() -> list[str] | None:
                names = sorted(await ok.list_topics())
                return names if names == before else None

            assert await eventually(listed, what="alice's token accepted") == before

    asyncio.run(main())
