"""SCRAM-style credentials (RFC 5802 keys): the cluster stores what checks a password, never
the password.

``salted = PBKDF2-HMAC(password, salt, iterations)``; ``client_key = HMAC(salted, "Client
Key")``; ``stored_key = H(client_key)``; ``server_key = HMAC(salted, "Server Key")``. The
client (``raftka users add``) derives ``salted`` and sends it; the controller computes and
stores ``stored_key`` and ``server_key`` (UserScramCredentialRecord). A bearer token carries the
password over TLS; the node re-derives ``stored_key`` with the stored salt and iterations and
compares in constant time. PBKDF2 costs milliseconds by design, so successful checks are
remembered in a small cache keyed by the password's digest and the credential itself: a
changed or removed credential no longer matches any entry.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass

from raftka.common.security.model import ScramCredential
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512

HASH_BY_MECHANISM: dict[int, str] = {SCRAM_SHA_256: "sha256", SCRAM_SHA_512: "sha512"}
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 16384
DEFAULT_ITERATIONS = 8192
MIN_SALT_BYTES = 16
MAX_SALT_BYTES = 64
MAX_USER_NAME = 255


def hash_name(mechanism: int) -> str:
    try:
        return HASH_BY_MECHANISM[mechanism]
    except KeyError:
        raise ValueError(f"unknown SCRAM mechanism {mechanism}") from None


def salted_password(password: str, salt: bytes, iterations: int, mechanism: int) -> bytes:
    """RFC 5802 ``Hi(password, salt, i)`` (PBKDF2-HMAC)."""
    return hashlib.pbkdf2_hmac(hash_name(mechanism), password.encode(), salt, iterations)


@dataclass(frozen=True, slots=True)
class DerivedKeys:
    stored_key: bytes
    server_key: bytes


def keys_from_salted(salted: bytes, mechanism: int) -> DerivedKeys:
    """The stored and server keys of a salted password."""
    name = hash_name(mechanism)
    client_key = hmac.digest(salted, b"Client Key", name)
    return DerivedKeys(
        stored_key=hashlib.new(name, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", name),
    )


def new_salt(size: int = 32) -> bytes:
    return os.urandom(size)


def make_credential(
    name: str,
    password: str,
    mechanism: int = SCRAM_SHA_512,
    iterations: int = DEFAULT_ITERATIONS,
    salt: bytes | None = None,
) -> ScramCredential:
    """A whole credential from a password (tests; the controller builds it from the salted
    password it is sent)."""
    salt = salt or new_salt()
    keys = keys_from_salted(salted_password(password, salt, iterations, mechanism), mechanism)
    return ScramCredential(name, mechanism, salt, keys.stored_key, keys.server_key, iterations)


def password_matches(credential: ScramCredential, password: str) -> bool:
    """Whether ``password`` is the one ``credential`` was made from (constant-time compare)."""
    salted = salted_password(password, credential.salt, credential.iterations, credential.mechanism)
    keys = keys_from_salted(salted, credential.mechanism)
    return hmac.compare_digest(keys.stored_key, credential.stored_key)


class VerificationCache:
    """Remembers successful checks so a client's every call does not cost a PBKDF2.

    Keyed by (user, mechanism, sha256(password), the credential): a new credential for the
    user (another salt, keys or iterations) misses the cache, and a removed one is never looked
    up. Only successes are kept, so wrong guesses always pay the full derivation. Bounded: the
    oldest entry goes first.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[tuple[str, int, bytes, ScramCredential], None] = OrderedDict()

    def verify(self, credential: ScramCredential, password: str) -> bool:
        key = (
            credential.name,
            credential.mechanism,
            hashlib.sha256(password.encode()).digest(),
            credential,
        )
        if key in self._entries:
            self._entries.move_to_end(key)
            return True
        if not password_matches(credential, password):
            return False
        self._entries[key] = None
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._entries)
