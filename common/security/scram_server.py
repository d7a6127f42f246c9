"""The server side of a SCRAM exchange (RFC 5802, SCRAM-SHA-256 / -512 as RFC 7677 names them),
sans-I/O: client messages in, server messages (or an error) out.

It checks the client's proof against the stored credential (salt, iterations, stored key,
server key), so the password is never needed, nor sent: ``ClientKey = proof XOR
HMAC(StoredKey, AuthMessage)`` must hash to the stored key, and the server proves it knows the
credential with ``HMAC(ServerKey, AuthMessage)``. Channel binding is not offered (gs2 header
``n`` or ``y``; ``p=`` is refused), and neither are Kafka's delegation tokens (the
``tokenauth`` extension). An unknown user gets a server-first message like a known one's
(salt derived from the name and a per-process secret), and fails only at the proof, so the
exchange does not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from raftka.common.security.model import ScramCredential
from raftka.common.security.scram import DEFAULT_ITERATIONS, hash_name

NONCE_BYTES = 24
MAX_MESSAGE_BYTES = 4096
"""A SCRAM message longer than this is refused (they are a few hundred bytes)."""
_FAKE_SALT_SECRET = os.urandom(32)


class ScramError(Exception):
    """The exchange failed; ``message`` says why without naming a password or key."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ClientFirst:
    gs2_header: str
    user: str
    nonce: str
    bare: str
    """client-first-message-bare, as sent (part of the AuthMessage)."""


def _attributes(message: str) -> list[tuple[str, str]]:
    parts = []
    for item in message.split(","):
        key, eq, value = item.partition("=")
        if len(key) != 1 or not eq:
            raise ScramError(f"malformed SCRAM attribute {item[:40]!r}")
        parts.append((key, value))
    return parts


def _saslname(value: str) -> str:
    """RFC 5802's saslname: ``=2C`` is a comma, ``=3D`` an equals sign, no other ``=``."""
    out = value.replace("=2C", ",").replace("=3D", "=")
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise ScramError("the user name has an '=' not written =2C or =3D")
    return out


def parse_client_first(data: bytes) -> ClientFirst:
    text = _text(data)
    if text.startswith("p="):
        raise ScramError("channel binding is not supported: use gs2 header 'n,,'")
    flag, _, rest = text.partition(",")
    authzid, _, bare = rest.partition(",")
    if flag not in ("n", "y") or not bare:
        raise ScramError("the client-first message does not start with 'n,,' or 'y,,'")
    items = bare.split(",")
    attrs = _attributes(",".join(items[:2]))
    if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
        raise ScramError("the client-first message must be n=<user>,r=<nonce>[,extensions]")
    if attrs[0][1] == "" or attrs[1][1] == "":
        raise ScramError("empty user name or nonce in the client-first message")
    user = _saslname(attrs[0][1])
    if authzid and _saslname(authzid.removeprefix("a=")) != user:
        raise ScramError("an authorization id other than the user is not supported")
    for item in items[2:]:
        key, _, value = item.partition("=")
        if key == "m":
            raise ScramError("mandatory SCRAM extensions are not supported")
        if key == "tokenauth" and value != "false":
            raise ScramError("delegation tokens are not supported")
    return ClientFirst(f"{flag},{authzid},", user, attrs[1][1], bare)


def _text(data: bytes) -> str:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ScramError(f"SCRAM message of {len(data)} bytes (at most {MAX_MESSAGE_BYTES})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("the SCRAM message is not UTF-8") from None


def _new_nonce() -> str:
    return base64.b64encode(os.urandom(NONCE_BYTES)).decode()


class ScramServer:
    """One exchange: :meth:`first` answers client-first, :meth:`final` answers client-final
    and gives the authenticated user name. Any ScramError ends the exchange."""

    def __init__(
        self,
        mechanism: int,
        credential_of: Callable[[str], ScramCredential | None],
        *,
        server_nonce: Callable[[], str] = _new_nonce,
    ) -> None:
        """``credential_of``: the user's stored credential for ``mechanism`` (None: no such
        user); ``server_nonce``: the server's part of the nonce (tests pass RFC 7677's)."""
        self._mechanism = mechanism
        self._hash = hash_name(mechanism)
        self._credential_of = credential_of
        self._server_nonce = server_nonce
        self._client_first: ClientFirst | None = None
        self._credential: ScramCredential | None = None
        self._server_first = ""
        self._nonce = ""
        self.user = ""

    def first(self, client_first: bytes) -> bytes:
        if self._client_first is not None:
            raise ScramError("a second client-first message")
        parsed = parse_client_first(client_first)
        self._client_first = parsed
        self.user = parsed.user
        credential = self._credential_of(parsed.user)
        self._credential = credential
        if credential is not None:
            salt, iterations = credential.salt, credential.iterations
        else:
            salt = hmac.digest(_FAKE_SALT_SECRET, parsed.user.encode(), "sha256")[:16]
            iterations = DEFAULT_ITERATIONS
        self._nonce = parsed.nonce + self._server_nonce()
        self._server_first = f"r={self._nonce},s={base64.b64encode(salt).decode()},i={iterations}"
        return self._server_first.encode()

    def final(self, client_final: bytes) -> tuple[str, bytes]:
        """The authenticated user and the server-final message."""
        first = self._client_first
        if first is None or not self._server_first:
            raise ScramError("a client-final message before the client-first one")
        text = _text(client_final)
        without_proof, sep, proof_text = text.rpartition(",p=")
        if not sep:
            raise ScramError("the client-final message has no proof (p=)")
        attrs = dict(_attributes(without_proof))
        try:
            binding = base64.b64decode(attrs.get("c", ""), validate=True)
            proof = base64.b64decode(proof_text, validate=True)
        except (binascii.Error, ValueError):
            raise ScramError("the client-final message is not valid base64") from None
        if binding != first.gs2_header.encode():
            raise ScramError("the channel binding (c=) does not repeat the gs2 header")
        # Kafka's broker accepts a nonce that ends with the exchange's: librdkafka before 2.2
        # sends its own nonce twice (client nonce + the whole nonce). The server's part is
        # still required, so an old exchange cannot be replayed.
        if not attrs.get("r", "").endswith(self._nonce):
            raise ScramError("the nonce (r=) is not the one of this exchange")
        auth_message = f"{first.bare},{self._server_first},{without_proof}".encode()
        credential = self._credential
        if credential is None or not self._proof_checks(credential, proof, auth_message):
            # One message for an unknown user and a wrong password: no user enumeration.
            raise ScramError(
                f"authentication failed for user {first.user!r}: wrong user name or password"
            )
        signature = hmac.digest(credential.server_key, auth_message, self._hash)
        return first.user, b"v=" + base64.b64encode(signature)

    def _proof_checks(self, credential: ScramCredential, proof: bytes, message: bytes) -> bool:
        signature = hmac.digest(credential.stored_key, message, self._hash)
        if len(proof) != len(signature):
            return False
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        return hmac.compare_digest(
            hashlib.new(self._hash, client_key).digest(), credential.stored_key
        )
