import hashlib
import hmac
from unittest import mock

from raftka.common.security import scram
from raftka.common.security.model import ScramCredential
from raftka.v1.common_pb2 import SCRAM_SHA_256, SCRAM_SHA_512


def test_rfc7677_sha256_test_vector() -> None:
    # RFC 7677 section 3: user "user", password "pencil", 4096 iterations.
    import base64

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = scram.salted_password("pencil", salt, 4096, SCRAM_SHA_256)
    keys = scram.keys_from_salted(salted, SCRAM_SHA_256)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert keys.stored_key == hashlib.sha256(client_key).digest()
    # The server signature of the RFC's exchange, computed from our server key.
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)"
        b"hNlF$k0"
    )
    signature = hmac.digest(keys.server_key, auth_message, "sha256")
    assert base64.b64encode(signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def test_sha512_keys_are_64_bytes_and_verify() -> None:
    cred = scram.make_credential("alice", "s3cret", SCRAM_SHA_512, 4096)
    assert len(cred.stored_key) == len(cred.server_key) == 64
    assert scram.password_matches(cred, "s3cret")
    assert not scram.password_matches(cred, "s3cret ")


def test_cache_skips_pbkdf2_for_a_known_good_password() -> None:
    cache = scram.VerificationCache()
    cred = scram.make_credential("alice", "pw", SCRAM_SHA_256, 4096)
    assert cache.verify(cred, "pw")
    with mock.patch.object(scram, "password_matches", side_effect=AssertionError("derived")):
        assert cache.verify(cred, "pw")


def test_cache_keeps_no_failures_and_misses_a_changed_credential() -> None:
    cache = scram.VerificationCache()
    cred = scram.make_credential("alice", "pw", SCRAM_SHA_256, 4096)
    assert not cache.verify(cred, "wrong")
    assert len(cache) == 0
    assert cache.verify(cred, "pw")
    changed = scram.make_credential("alice", "new", SCRAM_SHA_256, 4096)
    assert not cache.verify(changed, "pw")
    assert cache.verify(changed, "new")


def test_cache_is_bounded() -> None:
    cache = scram.VerificationCache(capacity=2)
    creds: list[ScramCredential] = [
        scram.make_credential(f"u{i}", "pw", SCRAM_SHA_256, 4096) for i in range(3)
    ]
    for cred in creds:
        assert cache.verify(cred, "pw")
    assert len(cache) == 2
