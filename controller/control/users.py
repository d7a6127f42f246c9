"""User credentials (Kafka's AlterUserScramCredentials / DescribeUserScramCredentials), planned
against the image: each user's items succeed or fail together, and only the keys derived
from the salted password are stored (raftka.common.security.scram)."""

from __future__ import annotations

from collections import Counter

from raftka.common.errors import RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.common.security import scram
from raftka.common.security_errors import (
    DuplicateResourceError,
    ResourceNotFoundError,
    UnacceptableCredentialError,
)
from raftka.controller.control.result import ControllerResult
from raftka.v1 import security_pb2 as pb
from raftka.v1.common_pb2 import NONE, SCRAM_SHA_512
from raftka.v1.metadata_pb2 import (
    MetadataRecord,
    RemoveUserScramCredentialRecord,
    UserScramCredentialRecord,
)


def validate_user_name(name: str) -> None:
    if not 1 <= len(name) <= scram.MAX_USER_NAME:
        raise UnacceptableCredentialError(f"user name must be 1..{scram.MAX_USER_NAME} characters")
    if ":" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise UnacceptableCredentialError(
            f"user name {name!r} may not contain ':' or control characters"
        )


def _validate_upsertion(u: pb.ScramCredentialUpsertion) -> None:
    validate_user_name(u.name)
    if u.mechanism not in scram.HASH_BY_MECHANISM:
        raise UnacceptableCredentialError("mechanism must be SCRAM_SHA_256 or SCRAM_SHA_512")
    if not scram.MIN_ITERATIONS <= u.iterations <= scram.MAX_ITERATIONS:
        raise UnacceptableCredentialError(
            f"iterations must be {scram.MIN_ITERATIONS}..{scram.MAX_ITERATIONS}, not {u.iterations}"
        )
    if not scram.MIN_SALT_BYTES <= len(u.salt) <= scram.MAX_SALT_BYTES:
        raise UnacceptableCredentialError(
            f"salt must be {scram.MIN_SALT_BYTES}..{scram.MAX_SALT_BYTES} bytes"
        )
    digest = 64 if u.mechanism == SCRAM_SHA_512 else 32
    if len(u.salted_password) != digest:
        raise UnacceptableCredentialError(f"salted_password must be {digest} bytes")


def alter_credentials(
    image: MetadataImage, request: pb.AlterUserScramCredentialsRequest
) -> ControllerResult[pb.AlterUserScramCredentialsResponse]:
    security = image.security
    items = [(u.name, u.mechanism) for u in request.upsertions] + [
        (d.name, d.mechanism) for d in request.deletions
    ]
    counts = Counter(items)
    errors: dict[str, RaftkaError] = {}
    records: dict[str, list[MetadataRecord]] = {}
    order = list(dict.fromkeys(name for name, _ in items))
    for u in request.upsertions:
        try:
            if counts[(u.name, u.mechanism)] > 1:
                raise DuplicateResourceError(f"user {u.name!r} and its mechanism appear twice")
            _validate_upsertion(u)
            keys = scram.keys_from_salted(u.salted_password, u.mechanism)
            record = UserScramCredentialRecord(
                name=u.name,
                mechanism=u.mechanism,
                salt=u.salt,
                stored_key=keys.stored_key,
                server_key=keys.server_key,
                iterations=u.iterations,
            )
            records.setdefault(u.name, []).append(MetadataRecord(user_scram_credential=record))
        except RaftkaError as e:
            errors.setdefault(u.name, e)
    for d in request.deletions:
        try:
            if counts[(d.name, d.mechanism)] > 1:
                raise DuplicateResourceError(f"user {d.name!r} and its mechanism appear twice")
            if security.credential(d.name, d.mechanism) is None:
                raise ResourceNotFoundError(f"user {d.name!r} has no such credential")
            records.setdefault(d.name, []).append(
                MetadataRecord(
                    remove_user_scram_credential=RemoveUserScramCredentialRecord(
                        name=d.name, mechanism=d.mechanism
                    )
                )
            )
        except RaftkaError as e:
            errors.setdefault(d.name, e)
    response = pb.AlterUserScramCredentialsResponse()
    out: list[MetadataRecord] = []
    for name in order:
        error = errors.get(name)
        if error is None:
            out.extend(records.get(name, ()))
            response.results.add(name=name, error_code=NONE)
        else:
            response.results.add(
                name=name,
                error_code=error.code,
                error_message=error.message,
            )
    return ControllerResult(tuple(out), response)


def describe_credentials(
    image: MetadataImage, request: pb.DescribeUserScramCredentialsRequest
) -> pb.DescribeUserScramCredentialsResponse:
    by_user: dict[str, list[pb.ScramCredentialInfo]] = {}
    for (name, mechanism), cred in sorted(image.security.credentials.items()):
        by_user.setdefault(name, []).append(
            pb.ScramCredentialInfo(mechanism=mechanism, iterations=cred.iterations)  # type: ignore[arg-type]
        )
    response = pb.DescribeUserScramCredentialsResponse()
    names = list(dict.fromkeys(request.names)) or sorted(by_user)
    for name in names:
        if name in by_user:
            response.results.add(name=name, credentials=by_user[name])
        else:
            missing = ResourceNotFoundError(f"user {name!r} has no credentials")
            response.results.add(
                name=name,
                error_code=missing.code,
                error_message=missing.message,
            )
    return response
