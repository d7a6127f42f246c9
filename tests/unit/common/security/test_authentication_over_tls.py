"""The authentication interceptor on a real in-process TLS server: the principal comes from
the client certificate's subject or one of its subject alternative names (mapping rules), as
gRPC reports them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from raftka.common.rpc.channels import add_listener, new_server, open_channel
from raftka.common.security.authentication import authentication_interceptor
from raftka.common.security.caller import current_caller
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import ChannelSecurity
from raftka.ops.tls_certs import CertificateAuthority

METHOD = "/test.Who/Am"


async def _who_am_i(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return current_caller().principal.encode()


def _server(settings: SecuritySettings) -> tuple[grpc.aio.Server, int]:
    server = new_server([authentication_interceptor(settings, lambda: None)])
    handler = grpc.unary_unary_rpc_method_handler(
        _who_am_i, request_deserializer=None, response_serializer=None
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Who", {"Am": handler}),)
    )
    port = add_listener(server, "127.0.0.1:0", settings)
    return server, port


async def _principal(port: int, security: ChannelSecurity) -> str:
    async with open_channel(f"127.0.0.1:{port}", security=security) as channel:
        call = channel.unary_unary(METHOD)
        answer: bytes = await call(b"", timeout=10)
        return answer.decode()


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ("RULE:^CN=([^,]+).*$/$1/,DEFAULT", "User:billing"),
        (r"SAN:RULE:^(.*)\.svc\.example$/svc-$1/,DEFAULT", "User:svc-billing"),
        ("DEFAULT", "User:CN=billing,OU=raftka"),
    ],
)
def test_the_principal_comes_from_the_certificate(
    tmp_path: Path, rules: str, expected: str
) -> None:
    ca = CertificateAuthority.create(tmp_path)
    node = ca.issue(tmp_path, "node-1")
    client = ca.issue(tmp_path, "billing", hosts=("billing.svc.example",))
    settings = SecuritySettings(
        tls_cert_file=str(node.cert),
        tls_key_file=str(node.key),
        tls_ca_file=str(node.ca),
        client_auth="required",
        principal_mapping_rules=rules,
    )
    security = ChannelSecurity(
        tls=True,
        ca_file=str(node.ca),
        cert_file=str(client.cert),
        key_file=str(client.key),
    )

    async def scenario() -> str:
        server, port = _server(settings)
        await server.start()
        try:
            return await _principal(port, security)
        finally:
            await server.stop(grace=None)

    assert asyncio.run(scenario()) == expected
