"""A connection's authentication, frame by frame: SaslHandshake v0 and v1, SaslAuthenticate
with SCRAM and PLAIN against stored credentials, and what ends a connection before it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
from typing import Any, cast

import pytest
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32

from raftka.broker.kafka.dispatch import ApiTable
from raftka.broker.kafka.framing import FrameError, Limits
from raftka.broker.kafka.listener import sasl_apis
from raftka.broker.kafka.sasl import (
    MAX_UNAUTHENTICATED_BYTES,
    SASL_AUTHENTICATE_KEY,
    SASL_HANDSHAKE_KEY,
    ConnectionAuth,
)
from raftka.broker.kafka.schema import build, request_type, response_type
from raftka.common.metadata.security_image import SecurityImage
from raftka.common.security.authentication import Authenticator
from raftka.common.security.model import ScramCredential
from raftka.common.security.scram import make_credential
from raftka.common.security.settings import SecuritySettings
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

PASSWORD = "pencil"
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
TABLE = ApiTable(sasl_apis("SASL_SSL"))


class Credentials:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, int], ScramCredential] = {
            ("alice", m): make_credential("alice", PASSWORD, m, 4096)
            for m in (SCRAM_SHA_256, SCRAM_SHA_512)
        }

    def credential(self, name: str, mechanism: int) -> ScramCredential | None:
        return self.stored.get((name, mechanism))


def new_auth(credentials: Credentials | None = None) -> ConnectionAuth:
    image = cast(SecurityImage, credentials or Credentials())
    return ConnectionAuth(
        host="10.0.0.9",
        caller=None,
        mechanisms=MECHANISMS,
        authenticator=Authenticator(SecuritySettings(), lambda: image),
        image=lambda: image,
    )


def frame(key: int, version: int, **fields: Any) -> bytes:
    body_type = request_type(key, version)
    header_type = body_type.__header_schema__
    buffer = io.BytesIO()
    header = header_type(
        request_api_key=i16(key),
        request_api_version=i16(version),
        correlation_id=i32(9),
        client_id="t",
    )
    entity_writer(header_type)(buffer, header)
    entity_writer(body_type)(buffer, build(body_type, **fields))
    return buffer.getvalue()


def serve(auth: ConnectionAuth, key: int, version: int, **fields: Any) -> Any:
    answer = asyncio.run(auth.serve_unauthenticated(frame(key, version, **fields), TABLE))
    answer_type = response_type(key, version)
    header, used = entity_reader(answer_type.__header_schema__)(answer, 4)
    assert header.correlation_id == 9
    body, _ = entity_reader(answer_type)(answer, 4 + used)
    return body


def authenticate(auth: ConnectionAuth, data: bytes) -> Any:
    return serve(auth, SASL_AUTHENTICATE_KEY, 2, auth_bytes=data)


def test_scram_sha_512_over_handshake_v1_and_authenticate_v2() -> None:
    auth = new_auth()
    handshake = serve(auth, SASL_HANDSHAKE_KEY, 1, mechanism="SCRAM-SHA-512")
    assert handshake.error_code == ErrorCode.none and handshake.mechanisms == MECHANISMS
    bare = "n=alice,r=abcdef"
    first = authenticate(auth, f"n,,{bare}".encode())
    assert first.error_code == ErrorCode.none and not auth.authenticated
    server_first = first.auth_bytes.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha512", PASSWORD.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha512")
    without_proof = f"c=biws,r={fields['r']}"
    message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha512(client_key).digest(), message, "sha512")
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature, strict=True)))
    final = authenticate(auth, f"{without_proof},p={proof.decode()}".encode())
    server_key = hmac.digest(salted, b"Server Key", "sha512")
    assert final.error_code == ErrorCode.none
    assert final.auth_bytes == b"v=" + base64.b64encode(hmac.digest(server_key, message, "sha512"))
    assert auth.caller is not None and auth.caller.principal == "User:alice"
    assert auth.caller.host == "10.0.0.9" and auth.caller.authenticated


def test_plain_checks_the_password_against_the_stored_credential() -> None:
    auth = new_auth()
    serve(auth, SASL_HANDSHAKE_KEY, 1, mechanism="PLAIN")
    answer = authenticate(auth, b"\0alice\0wrong-password")
    assert answer.error_code == ErrorCode.sasl_authentication_failed
    assert auth.failure is not None and "wrong-password" not in auth.failure
    assert "wrong-password" not in (answer.error_message or "") and not auth.authenticated
    auth = new_auth()
    serve(auth, SASL_HANDSHAKE_KEY, 1, mechanism="plain")
    assert authenticate(auth, f"\0alice\0{PASSWORD}".encode()).error_code == ErrorCode.none
    assert auth.caller is not None and auth.caller.principal == "User:alice"


def test_a_removed_user_cannot_start_a_session() -> None:
    credentials = Credentials()
    credentials.stored.clear()
    auth = new_auth(credentials)
    serve(auth, SASL_HANDSHAKE_KEY, 1, mechanism="PLAIN")
    answer = authenticate(auth, f"\0alice\0{PASSWORD}".encode())
    assert answer.error_code == ErrorCode.sasl_authentication_failed


def test_handshake_v0_exchanges_bare_tokens() -> None:
    auth = new_auth()
    assert serve(auth, SASL_HANDSHAKE_KEY, 0, mechanism="PLAIN").error_code == ErrorCode.none
    answer = asyncio.run(auth.serve_unauthenticated(f"\0alice\0{PASSWORD}".encode(), TABLE))
    assert answer == b"\0\0\0\0" and auth.authenticated
    auth = new_auth()
    serve(auth, SASL_HANDSHAKE_KEY, 0, mechanism="PLAIN")
    with pytest.raises(FrameError, match="wrong user name or password") as refused:
        asyncio.run(auth.serve_unauthenticated(b"\0alice\0nope-nope", TABLE))
    assert refused.value.reason == "authentication_failed"


def test_an_unknown_mechanism_or_out_of_order_request_fails() -> None:
    auth = new_auth()
    answer = serve(auth, SASL_HANDSHAKE_KEY, 1, mechanism="GSSAPI")
    assert answer.error_code == ErrorCode.unsupported_sasl_mechanism
    assert answer.mechanisms == MECHANISMS and auth.failure is not None
    auth = new_auth()
    answer = authenticate(auth, b"n,,n=alice,r=x")
    assert answer.error_code == ErrorCode.illegal_sasl_state and auth.failure is not None


def test_nothing_else_is_served_before_authentication_and_frames_stay_small() -> None:
    auth = new_auth()
    metadata = frame(
        3,
        12,
        topics=None,
        allow_auto_topic_creation=False,
        include_topic_authorized_operations=False,
    )
    with pytest.raises(FrameError, match="before authentication") as refused:
        asyncio.run(auth.serve_unauthenticated(metadata, TABLE))
    assert refused.value.reason == "not_authenticated"
    limits = Limits(max_request_bytes=1 << 24, read_timeout_s=1, idle_timeout_s=1, max_in_flight=1)
    assert auth.limits(limits).max_request_bytes == MAX_UNAUTHENTICATED_BYTES
