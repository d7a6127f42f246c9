"""The request-level error table in common.proto's top comment is what the servers do.

Client authors in other languages read the table (raftka-error -> gRPC status) instead of
common/rpc/status.py; this test parses it and compares it with ``status_for`` over every error
class the mapping covers, so neither can change without the other.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import grpc

import raftka.common
import raftka.v1
from raftka.common import errors
from raftka.common.metadata.errors import MetadataReplayError
from raftka.common.rpc.channels import PlaintextRefusedError
from raftka.common.rpc.status import _STATUS_BY_ERROR, status_for, trailing_metadata_for
from raftka.common.security.listeners import ListenerConfigError
from raftka.common.security.tls import TlsConfigError
from raftka.v1.common_pb2 import ErrorCode

COMMON_PROTO = Path(raftka.v1.__file__).parent / "common.proto"
HEADER = re.compile(r"^//\s*\|\s*raftka-error\s*\|\s*gRPC status\s*\|")
ROW = re.compile(r"^//\s*\|(.*)\|\s*$")

# Errors of a node's own startup or metadata replay: they stop a node, never answer a request.
NOT_REQUEST_LEVEL: frozenset[type[errors.RaftkaError]] = frozenset(
    {
        errors.ConfigFileError,
        errors.DataDirectoryError,
        MetadataReplayError,
        PlaintextRefusedError,
        TlsConfigError,
        ListenerConfigError,
    }
)


def documented_table() -> list[tuple[str, str]]:
    """(raftka-error, gRPC status) for each row of the table in common.proto's top comment."""
    lines = COMMON_PROTO.read_text().splitlines()
    syntax = next(i for i, line in enumerate(lines) if line.startswith("syntax = "))
    starts = [i for i, line in enumerate(lines) if HEADER.match(line)]
    assert len(starts) == 1, "common.proto must have exactly one raftka-error | gRPC status table"
    start = starts[0]
    assert start < syntax, "the table belongs to the top comment (before `syntax`)"
    assert re.match(r"^//\s*\|[-|\s]+\|\s*$", lines[start + 1]), "no separator row after header"
    rows = []
    for line in lines[start + 2 : syntax]:
        match = ROW.match(line)
        if match is None:
            break
        cells = [cell.strip() for cell in match.group(1).split("|")]
        assert len(cells) == 3, f"a row needs raftka-error, status and when: {line!r}"
        rows.append((cells[0], cells[1]))
    return rows


def _common_errors() -> set[type[errors.RaftkaError]]:
    """Every RaftkaError class defined in raftka.common (every module imported)."""
    for module in pkgutil.walk_packages(raftka.common.__path__, "raftka.common."):
        importlib.import_module(module.name)
    found: set[type[errors.RaftkaError]] = set()
    pending: list[type[errors.RaftkaError]] = [errors.RaftkaError]
    while pending:
        cls = pending.pop()
        if cls not in found:
            found.add(cls)
            pending.extend(cls.__subclasses__())
    return {cls for cls in found if cls.__module__.startswith("raftka.common.")}


def served_mapping() -> set[tuple[str, str]]:
    """(raftka-error, gRPC status) the servers send, from common/rpc/status.py."""
    mapped = tuple(_STATUS_BY_ERROR)
    pairs = set()
    for cls in _common_errors():
        if cls is errors.RaftkaError or issubclass(cls, mapped):
            error = cls.from_wire("x")
            (key, name), *_ = trailing_metadata_for(error)
            assert key == "raftka-error" and name == error.code_name
            pairs.add((name, status_for(error).name))
    return pairs


def test_every_error_class_is_request_level_or_named_as_not() -> None:
    mapped = tuple(_STATUS_BY_ERROR)
    unmapped = {
        cls
        for cls in _common_errors()
        if cls is not errors.RaftkaError and not issubclass(cls, mapped)
    }
    assert unmapped == NOT_REQUEST_LEVEL


def test_table_rows_are_real_codes_and_statuses() -> None:
    rows = documented_table()
    assert len(rows) == len(set(rows)), "a row is repeated"
    for code, status in rows:
        assert ErrorCode.Name(ErrorCode.Value(code)) == code  # Value raises for a bad name
        assert status in grpc.StatusCode.__members__, status


def test_table_matches_the_servers_mapping() -> None:
    documented = set(documented_table())
    served = served_mapping()
    assert documented - served == set(), "documented but not what the servers send"
    assert served - documented == set(), "sent by the servers but missing from common.proto"


def test_unexpected_failures_are_internal_unknown_server_error() -> None:
    error = errors.RaftkaError("boom")
    assert (error.code_name, status_for(error)) == (
        "UNKNOWN_SERVER_ERROR",
        grpc.StatusCode.INTERNAL,
    )
    assert ("UNKNOWN_SERVER_ERROR", "INTERNAL") in set(documented_table())
