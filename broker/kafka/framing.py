"""Kafka's framing: each request and response is a 4-byte big-endian size and that many bytes.

A request starts with its header (v1; v2, with tagged fields, for flexible versions): API key,
API version, correlation id, client id. A response starts with the correlation id (header v0;
v1, with tagged fields, for flexible versions, except ApiVersions which always answers v0 so a
client that does not know the broker's versions can read it). Reading is bounded: a size over
the limit is refused before its bytes are read, and a frame must arrive within a deadline."""

from __future__ import annotations

import asyncio
import io
import struct
from dataclasses import dataclass
from typing import Any

from kio.serial import entity_reader, entity_writer

from raftka.broker.kafka.schema import request_type

SIZE = struct.Struct(">i")
HEAD = struct.Struct(">hhi")
"""The first fields of every request header: API key, API version, correlation id."""


class FrameError(Exception):
    """The peer broke the framing or the limits; the connection is closed. ``reason`` is a
    snake_case word for the log line."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PeerClosed(Exception):
    """The peer closed the connection between two requests (the normal way to leave)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_request_bytes: int
    """The largest request size accepted (Kafka's socket.request.max.bytes)."""
    read_timeout_s: float
    """How long one request may take to arrive once its first byte has."""
    idle_timeout_s: float
    """How long a connection may send nothing between requests (connections.max.idle.ms)."""
    max_in_flight: int
    """Requests of one connection read ahead and being served at once."""
    sendfile: bool = True
    """Fetch records go from the segment files to the socket (zero copy) where the
    connection allows it (not under TLS)."""


async def read_frame(reader: asyncio.StreamReader, limits: Limits) -> bytes:
    """The next request's bytes (after its size). PeerClosed at a clean end between requests;
    FrameError for a size out of bounds, a frame cut short, or one arriving too slowly."""
    try:
        first = await asyncio.wait_for(reader.read(1), limits.idle_timeout_s)
    except TimeoutError:
        raise FrameError(
            "idle", f"no request for {limits.idle_timeout_s:g}s (connections.max.idle.ms)"
        ) from None
    if not first:
        raise PeerClosed
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            (size,) = SIZE.unpack(first + await reader.readexactly(3))
            if size < HEAD.size or size > limits.max_request_bytes:
                raise FrameError(
                    "bad_size",
                    f"request size {size} is outside 8..{limits.max_request_bytes} bytes "
                    "(kafka_max_request_bytes); nothing of it was read",
                )
            return await reader.readexactly(size)
    except asyncio.IncompleteReadError as e:
        raise FrameError(
            "truncated", f"the connection closed {len(e.partial)} bytes into a frame"
        ) from None
    except TimeoutError:
        raise FrameError(
            "read_timeout",
            f"a request did not arrive whole within {limits.read_timeout_s:g}s "
            "(kafka_request_read_timeout_ms)",
        ) from None


@dataclass(frozen=True, slots=True)
class RequestHead:
    api_key: int
    api_version: int
    correlation_id: int


def peek_head(frame: bytes) -> RequestHead:
    """API key, version and correlation id: the same bytes in every header version."""
    return RequestHead(*HEAD.unpack_from(frame, 0))


def parse_request(frame: bytes, head: RequestHead) -> tuple[str | None, Any]:
    """The client id and the request entity of a supported (key, version). ValueError (and
    kio's errors) for bytes that do not parse."""
    body_type = request_type(head.api_key, head.api_version)
    header, used = entity_reader(body_type.__header_schema__)(frame, 0)
    # Bytes after the body are ignored, as Kafka's own parser does (librdkafka's Metadata v12
    # carries 3 more than the schema names).
    body, _size = entity_reader(body_type)(frame, used)
    client_id: str | None = header.client_id
    return client_id, body


def encode_response(correlation_id: int, response: Any) -> bytes:
    """The size-prefixed response frame: header (of the version the response type names),
    then the body."""
    buffer = io.BytesIO()
    buffer.write(b"\0\0\0\0")
    header_type = type(response).__header_schema__
    entity_writer(header_type)(buffer, header_type(correlation_id=correlation_id))
    entity_writer(type(response))(buffer, response)
    frame = buffer.getbuffer()
    SIZE.pack_into(frame, 0, len(frame) - SIZE.size)
    data = bytes(frame)
    frame.release()
    return data
