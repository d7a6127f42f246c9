"""The Kafka listener's TLS, in process over loopback: the principal from a client certificate
through the mapping rules, ``requested`` client auth, and certificates rotated by replacing
their files (the next handshake has the new one)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from raftka.broker.kafka.sasl import ConnectionAuth
from raftka.broker.kafka.security import KafkaSecurity
from raftka.common.security.settings import SecuritySettings
from raftka.ops.tls_certs import CertFiles, CertificateAuthority

RULES = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"


def settings_for(node: CertFiles, client_auth: str) -> SecuritySettings:
    return SecuritySettings(
        tls_cert_file=str(node.cert),
        tls_key_file=str(node.key),
        tls_ca_file=str(node.ca),
        client_auth=client_auth,  # type: ignore[arg-type]
        principal_mapping_rules=RULES,
    )


async def handshake(
    security: KafkaSecurity, client: ssl.SSLContext
) -> tuple[ConnectionAuth | Exception, bytes]:
    """One connection: the server's view of it and the certificate it presented (DER)."""
    seen: asyncio.Future[ConnectionAuth | Exception] = asyncio.get_running_loop().create_future()

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.set_result(security.connection_auth(writer, "127.0.0.1"))
        except Exception as e:
            seen.set_result(e)
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=security.ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        _reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="127.0.0.1"
        )
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        outcome = await asyncio.wait_for(seen, 10)
        writer.close()
    finally:
        server.close()
    return outcome, der


def client_context(ca: Path, cert: CertFiles | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(str(cert.cert), str(cert.key))
    return context


@pytest.fixture
def pki(tmp_path: Path) -> tuple[CertificateAuthority, CertFiles, CertFiles]:
    ca = CertificateAuthority.create(tmp_path)
    return ca, ca.issue(tmp_path / "node", "node-1"), ca.issue(tmp_path / "clients", "alice")


def test_ssl_principal_is_the_mapped_certificate_subject(
    pki: tuple[CertificateAuthority, CertFiles, CertFiles],
) -> None:
    _ca, node, alice = pki
    security = KafkaSecurity("SSL", settings_for(node, "required"), lambda: None)
    outcome, _ = asyncio.run(handshake(security, client_context(node.ca, alice)))
    assert isinstance(outcome, ConnectionAuth) and outcome.caller is not None
    assert (outcome.caller.principal, outcome.caller.authenticated) == ("User:alice", True)
    # "requested" asks for a certificate without requiring one: without, anonymous.
    security = KafkaSecurity("SSL", settings_for(node, "requested"), lambda: None)
    outcome, _ = asyncio.run(handshake(security, client_context(node.ca, None)))
    assert isinstance(outcome, ConnectionAuth) and outcome.caller is not None
    assert outcome.caller.principal == "User:ANONYMOUS" and not outcome.caller.authenticated
    # SASL_SSL: nobody until SASL says who.
    security = KafkaSecurity("SASL_SSL", settings_for(node, "none"), lambda: None, "PLAIN")
    outcome, _ = asyncio.run(handshake(security, client_context(node.ca, None)))
    assert isinstance(outcome, ConnectionAuth) and not outcome.authenticated


def test_rotated_certificate_files_serve_the_next_handshake(
    pki: tuple[CertificateAuthority, CertFiles, CertFiles],
) -> None:
    ca, node, alice = pki
    security = KafkaSecurity("SSL", settings_for(node, "required"), lambda: None)
    client = client_context(node.ca, alice)
    _, first = asyncio.run(handshake(security, client))
    # Rotation: new key and certificate written over the old files.
    ca.issue(node.cert.parent, "node-1")
    _, second = asyncio.run(handshake(security, client))
    serial = [x509.load_der_x509_certificate(d).serial_number for d in (first, second)]
    assert serial[0] != serial[1]
    _, third = asyncio.run(handshake(security, client))
    assert third == second
