"""Callers of a TLS cluster (``LocalCluster(tls=True)``) under any principal: a certificate
from the cluster's own CA for ``CN=<name>``, as the ChannelSecurity of raw stubs and the
admin client, or as Producer/Consumer settings; and the check of a refused call."""

from __future__ import annotations

from typing import Any

import grpc

from raftka.common.rpc.status import ERROR_KEY
from raftka.common.security.tls import ChannelSecurity
from raftka.ops.local_cluster import LocalCluster
from raftka.ops.tls_certs import CertificateAuthority


def identity(cluster: LocalCluster, name: str) -> ChannelSecurity:
    """A caller whose client certificate (valid, from the cluster's CA) maps to
    ``User:<name>``. The files go under ``<tls>/clients`` so a name never overwrites a
    node's own certificate."""
    ca = CertificateAuthority.load(cluster.tls_dir)
    files = ca.issue(cluster.tls_dir / "clients", name)
    return ChannelSecurity(
        tls=True,
        ca_file=str(cluster.tls_dir / "ca.crt"),
        cert_file=str(files.cert),
        key_file=str(files.key),
    )


def client_settings(security: ChannelSecurity) -> dict[str, Any]:
    """The Producer/Consumer settings (librdkafka names) of ``security``'s certificate."""
    return {
        "security_protocol": "SSL",
        "ssl_ca_location": security.ca_file,
        "ssl_certificate_location": security.cert_file,
        "ssl_key_location": security.key_file,
    }


def assert_refused(
    error: grpc.aio.AioRpcError, code_name: str = "CLUSTER_AUTHORIZATION_FAILED"
) -> None:
    """``error`` is an authorization refusal: PERMISSION_DENIED with ``raftka-error:
    <code_name>``."""
    trailing = dict(error.trailing_metadata() or ())
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, (error.code(), error.details())
    assert trailing.get(ERROR_KEY) == code_name, (trailing, error.details())
