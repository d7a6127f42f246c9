"""The server side of SCRAM: RFC 7677's SCRAM-SHA-256 test vector, a SHA-512 round trip with a
client written from RFC 5802's formulas, and the refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from raftka.common.security.model import ScramCredential
from raftka.common.security.scram import make_credential
from raftka.common.security.scram_server import ScramError, ScramServer
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

# RFC 7677, section 3.
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_server(credential: ScramCredential | None) -> ScramServer:
    return ScramServer(
        SCRAM_SHA_256,
        lambda user: credential if credential and user == credential.name else None,
        server_nonce=lambda: RFC_SERVER_NONCE,
    )


def test_rfc_7677_test_vector() -> None:
    credential = make_credential("user", "pencil", SCRAM_SHA_256, 4096, RFC_SALT)
    server = rfc_server(credential)
    assert server.first(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    user, server_final = server.final(RFC_CLIENT_FINAL)
    assert (user, server_final) == ("user", RFC_SERVER_FINAL)


def test_rfc_vector_with_another_password_is_refused() -> None:
    credential = make_credential("user", "pencil2", SCRAM_SHA_256, 4096, RFC_SALT)
    server = rfc_server(credential)
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="wrong user name or password"):
        server.final(RFC_CLIENT_FINAL)


def test_unknown_user_gets_a_salt_and_fails_only_at_the_proof() -> None:
    server = rfc_server(None)
    first = server.first(RFC_CLIENT_FIRST)
    assert first.startswith(b"r=rOprNGfwEbeRWgbNEkqO%hvY") and b",s=" in first and b",i=" in first
    with pytest.raises(ScramError, match="wrong user name or password"):
        server.final(RFC_CLIENT_FINAL)


def client_exchange(server: ScramServer, user: str, password: str, name: str) -> bytes:
    """A client written from RFC 5802's formulas."""
    bare = f"n={user},r=clientnonce123"
    server_first = server.first(f"n,,{bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        name, password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", name)
    without_proof = f"c=biws,r={fields['r']}"
    message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.new(name, client_key).digest(), message, name)
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    _, final = server.final(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    server_key = hmac.digest(salted, b"Server Key", name)
    assert final == b"v=" + base64.b64encode(hmac.digest(server_key, message, name))
    return final


def test_sha512_round_trip() -> None:
    credential = make_credential("alice", "s3cret", SCRAM_SHA_512, 4096)
    server = ScramServer(SCRAM_SHA_512, {"alice": credential}.get)
    client_exchange(server, "alice", "s3cret", "sha512")
    assert server.user == "alice"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"p=tls-unique,,n=user,r=abc", "channel binding"),
        (b"x,,n=user,r=abc", "does not start"),
        (b"n,,r=abc,n=user", "must be n=<user>"),
        (b"n,,n=user,r=abc,m=ext", "mandatory"),
        (b"n,,n=user,r=abc,tokenauth=true", "delegation tokens"),
        (b"n,a=other,n=user,r=abc", "authorization id"),
        (b"n,,n=us=er,r=abc", "'='"),
        (b"\xff\xfe", "UTF-8"),
        (b"n,,n=user,r=" + b"a" * 5000, "at most"),
    ],
)
def test_bad_client_first_is_refused(message: bytes, error: str) -> None:
    with pytest.raises(ScramError, match=error):
        rfc_server(None).first(message)


def test_client_final_must_repeat_the_nonce_and_header() -> None:
    credential = make_credential("user", "pencil", SCRAM_SHA_256, 4096, RFC_SALT)
    server = rfc_server(credential)
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="nonce"):
        server.final(b"c=biws,r=rOprNGfwEbeRWgbNEkqOother,p=AAAA")
    server = rfc_server(credential)
    server.first(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="channel binding"):
        server.final(RFC_CLIENT_FINAL.replace(b"c=biws", b"c=eSws"))
    with pytest.raises(ScramError, match="before the client-first"):
        rfc_server(credential).final(RFC_CLIENT_FINAL)


def test_old_librdkafkas_doubled_client_nonce_is_accepted() -> None:
    """librdkafka 2.0 (Debian's kcat) prefixes the whole nonce with its own once more; the
    proof is over the message as sent, and Kafka's broker accepts it."""
    credential = make_credential("alice", "s3cret", SCRAM_SHA_256, 4096)
    server = ScramServer(SCRAM_SHA_256, {"alice": credential}.get)
    bare = "n=alice,r=cn"
    server_first = server.first(f"n,,{bare}".encode()).decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", b"s3cret", base64.b64decode(fields["s"]), 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r=cn{fields['r']}"
    message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    user, _ = server.final(f"{without_proof},p={base64.b64encode(proof).decode()}".encode())
    assert user == "alice"
