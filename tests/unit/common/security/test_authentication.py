from __future__ import annotations

import pytest

from raftka.common.errors import ConfigFileError, InvalidConfigError
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.rpc.channels import check_plaintext_allowed, open_channel
from raftka.common.security.authentication import Authenticator, peer_host
from raftka.common.security.settings import SecuritySettings
from raftka.common.security.tls import ChannelSecurity, bearer_token, parse_bearer_token
from raftka.common.security_errors import AuthenticationFailedError
from raftka.v1.common_pb2 import SCRAM_SHA_256
from raftka.v1.metadata_pb2 import MetadataRecord, UserScramCredentialRecord


def image_with(name: str, password: str) -> SecurityImage:
    from raftka.common.security.scram import make_credential

    c = make_credential(name, password, SCRAM_SHA_256, 4096)
    image = SecurityImage()
    image.apply(
        MetadataRecord(
            user_scram_credential=UserScramCredentialRecord(
                name=c.name,
                mechanism=c.mechanism,  # type: ignore[arg-type]
                salt=c.salt,
                stored_key=c.stored_key,
                server_key=c.server_key,
                iterations=c.iterations,
            )
        )
    )
    return image


def authenticator(**settings: object) -> Authenticator:
    image = image_with("alice", "pw")
    rules = "RULE:^CN=([^,]+).*$/$1/,DEFAULT"
    return Authenticator(
        SecuritySettings(principal_mapping_rules=rules, **settings),  # type: ignore[arg-type]
        lambda: image,
    )


def test_token_then_certificate_then_anonymous() -> None:
    auth = authenticator()
    token = bearer_token("alice", "pw")
    caller = auth.authenticate(
        token=token, cert_subject="CN=node-1,OU=x", tls=True, host="10.0.0.1"
    )
    assert (caller.principal, caller.authenticated) == ("User:alice", True)
    caller = auth.authenticate(token=None, cert_subject="CN=node-1,OU=x", tls=True, host="h")
    assert caller.principal == "User:node-1"
    caller = auth.authenticate(token=None, cert_subject=None, tls=True, host="h")
    assert (caller.principal, caller.authenticated) == ("User:ANONYMOUS", False)


@pytest.mark.parametrize(
    "token",
    [bearer_token("alice", "nope"), bearer_token("bob", "pw"), "not base64!", "YWxpY2U="],
)
def test_a_bad_token_is_refused(token: str) -> None:
    with pytest.raises(AuthenticationFailedError):
        authenticator().authenticate(token=token, cert_subject=None, tls=True, host="h")


def test_no_credentials_where_required_says_how_to_authenticate() -> None:
    auth = authenticator(require_authentication=True)
    with pytest.raises(AuthenticationFailedError, match=r"client certificate .* or a bearer"):
        auth.authenticate(token=None, cert_subject=None, tls=True, host="h")


def test_tokens_over_plaintext_only_from_loopback() -> None:
    auth = authenticator()
    token = bearer_token("alice", "pw")
    assert auth.authenticate(
        token=token, cert_subject=None, tls=False, host="127.0.0.1"
    ).authenticated
    with pytest.raises(AuthenticationFailedError, match="only over TLS"):
        auth.authenticate(token=token, cert_subject=None, tls=False, host="10.1.2.3")


def test_token_format_round_trips_any_password() -> None:
    assert parse_bearer_token(bearer_token("u", "p:ä ß")) == ("u", "p:ä ß")
    with pytest.raises(ValueError):
        bearer_token("a:b", "x")


def test_peer_host() -> None:
    assert peer_host("ipv4:127.0.0.1:5555") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5555") == "::1"
    assert peer_host("unix:/tmp/x") == ""


def test_plaintext_listener_refused_off_loopback() -> None:
    check_plaintext_allowed("127.0.0.1:9092", SecuritySettings())
    check_plaintext_allowed("localhost:9092", SecuritySettings())
    check_plaintext_allowed("[::1]:9092", SecuritySettings())
    with pytest.raises(ConfigFileError, match="allow_plaintext"):
        check_plaintext_allowed("0.0.0.0:9092", SecuritySettings())
    with pytest.raises(ConfigFileError, match="without TLS"):
        check_plaintext_allowed("node1.example:9092", SecuritySettings())
    check_plaintext_allowed("0.0.0.0:9092", SecuritySettings(allow_plaintext=True))
    check_plaintext_allowed("0.0.0.0:9092", SecuritySettings(tls_cert_file="c", tls_key_file="k"))


def test_a_token_is_never_sent_over_plaintext() -> None:
    with pytest.raises(InvalidConfigError, match="plaintext"):
        open_channel("127.0.0.1:1", security=ChannelSecurity(token="x"))


def test_client_security_properties() -> None:
    from raftka.client.security import channel_security

    assert channel_security() is None
    s = channel_security("SASL_SSL", "ca.pem", sasl_username="u", sasl_password="p")
    assert s is not None and s.tls and s.token == bearer_token("u", "p")
    with pytest.raises(InvalidConfigError, match="never sent in clear"):
        channel_security("SASL_PLAINTEXT", sasl_username="u")
    with pytest.raises(InvalidConfigError, match="go together"):
        channel_security("SSL", ssl_certificate_location="c.pem")
