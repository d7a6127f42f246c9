"""Kafka's message types (kio, generated from Kafka's JSON schemas), version by version.

A handler serves a range of versions of one API with one body of code: it builds the entity of
the version asked for with :func:`build`, which keeps the fields that version has and drops
the others (a field added in v7 is simply absent from v6's type)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import sys
import uuid
from typing import Any

from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode

from raftka.common.errors import RaftkaError

NO_THROTTLE = datetime.timedelta(0)
UNKNOWN_AUTHORIZED_OPERATIONS = -(2**31)
"""Kafka's value for "authorized operations not asked for"."""


def request_type(api_key: int, version: int) -> type[Any]:
    return load_request_schema(api_key, version)


def response_type(api_key: int, version: int) -> type[Any]:
    return load_response_schema(api_key, version)


def nested(entity_type: type[Any], name: str) -> type[Any]:
    """A nested type (``MetadataResponseTopic``, ...) of the same version as ``entity_type``."""
    found: type[Any] = getattr(sys.modules[entity_type.__module__], name)
    return found


def build(entity_type: type[Any], **values: Any) -> Any:
    """``entity_type(**values)`` without the values for fields this version does not have."""
    names = {f.name for f in dataclasses.fields(entity_type)}
    return entity_type(**{k: v for k, v in values.items() if k in names})


def error_code(code: int) -> ErrorCode:
    """Kafka's error code for a Raftka one (the same numbers); an unknown one is
    UNKNOWN_SERVER_ERROR."""
    try:
        return ErrorCode(code)
    except ValueError:
        return ErrorCode.unknown_server_error


def error_of(error: RaftkaError) -> ErrorCode:
    return error_code(int(error.code))


def topic_uuid(topic_id: str) -> uuid.UUID:
    """A Raftka topic id (22 URL-safe base64 characters of 16 bytes, Kafka's Uuid.toString())
    as the UUID Kafka's protocol carries; the zero UUID when it is not of that form."""
    try:
        raw = base64.urlsafe_b64decode(topic_id + "==")
    except (binascii.Error, ValueError):
        return uuid.UUID(int=0)
    return uuid.UUID(bytes=raw) if len(raw) == 16 else uuid.UUID(int=0)


def raftka_topic_id(topic_id: uuid.UUID) -> str:
    """The Raftka topic id (22 URL-safe base64 characters) of a Kafka topic UUID: the inverse
    of :func:`topic_uuid`."""
    return base64.urlsafe_b64encode(topic_id.bytes).rstrip(b"=").decode()


def millis(delta: datetime.timedelta) -> int:
    return int(delta / datetime.timedelta(milliseconds=1))
