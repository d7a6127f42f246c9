"""The Kafka listener's framing, headers and ApiVersions table, without sockets."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import struct
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v12 import MetadataRequest
from kio.schema.metadata.v12.request import MetadataRequestTopic
from kio.schema.request_header.v2.header import RequestHeader
from kio.schema.types import TopicName
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32

from raftka.broker.config import BrokerConfig
from raftka.broker.kafka.dispatch import Api, ApiTable, RequestContext
from raftka.broker.kafka.framing import (
    FrameError,
    Limits,
    PeerClosed,
    encode_response,
    parse_request,
    peek_head,
    read_frame,
)
from raftka.broker.kafka.schema import build, response_type, topic_uuid
from raftka.common.errors import ConfigFileError
from raftka.common.ids import random_resource_id
from raftka.common.metadata.model import KAFKA_LISTENER

LIMITS = Limits(max_request_bytes=1024, read_timeout_s=0.05, idle_timeout_s=5, max_in_flight=4)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 10))


def reader_of(data: bytes, *, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


def test_a_frame_is_read_whole() -> None:
    async def body() -> None:
        reader = reader_of(struct.pack(">i", 10) + b"0123456789" + b"next")
        assert await read_frame(reader, LIMITS) == b"0123456789"

    run(body())


def test_a_size_over_the_limit_is_refused_before_its_bytes_are_read() -> None:
    async def body() -> None:
        reader = reader_of(struct.pack(">i", 1 << 30) + b"x" * 100)
        with pytest.raises(FrameError) as raised:
            await read_frame(reader, LIMITS)
        assert raised.value.reason == "bad_size" and "1073741824" in raised.value.message
        assert await reader.read() == b"x" * 100, "nothing of the body was read"

    run(body())


def test_a_negative_or_tiny_size_is_refused() -> None:
    async def body() -> None:
        for size in (-1, 0, 7):
            with pytest.raises(FrameError, match=r"outside 8\.\.1024"):
                await read_frame(reader_of(struct.pack(">i", size)), LIMITS)

    run(body())


def test_a_frame_cut_short_is_truncated() -> None:
    async def body() -> None:
        with pytest.raises(FrameError) as raised:
            await read_frame(reader_of(struct.pack(">i", 50) + b"abc"), LIMITS)
        assert raised.value.reason == "truncated" and "3 bytes" in raised.value.message

    run(body())


def test_the_end_between_requests_is_a_clean_close() -> None:
    async def body() -> None:
        with pytest.raises(PeerClosed):
            await read_frame(reader_of(b""), LIMITS)

    run(body())


def test_a_frame_that_stops_arriving_hits_the_read_deadline() -> None:
    async def body() -> None:
        reader = reader_of(struct.pack(">i", 50) + b"abc", eof=False)
        with pytest.raises(FrameError) as raised:
            await read_frame(reader, LIMITS)
        assert raised.value.reason == "read_timeout"

    run(body())


def metadata_v12_frame(correlation_id: int) -> bytes:
    buffer = io.BytesIO()
    header = RequestHeader(
        request_api_key=i16(3),
        request_api_version=i16(12),
        correlation_id=i32(correlation_id),
        client_id="c",
    )
    entity_writer(RequestHeader)(buffer, header)
    topic = MetadataRequestTopic(topic_id=uuid.UUID(int=0), name=TopicName("orders"))
    request = MetadataRequest(
        topics=(topic,), allow_auto_topic_creation=False, include_topic_authorized_operations=False
    )
    entity_writer(MetadataRequest)(buffer, request)
    return buffer.getvalue()


def test_a_flexible_request_header_and_body_parse() -> None:
    frame = metadata_v12_frame(41)
    head = peek_head(frame)
    assert (head.api_key, head.api_version, head.correlation_id) == (3, 12, 41)
    client_id, body = parse_request(frame, head)
    assert client_id == "c"
    assert [t.name for t in body.topics] == ["orders"]


async def answer_versions(table: ApiTable, version: int) -> Any:
    api = table.find(18, version)
    assert api is not None
    return await api.handle(None, RequestContext(18, version, 1, "c", "peer"))


def test_api_versions_advertises_exactly_the_table() -> None:
    async def body() -> None:
        async def never(_request: Any, _context: RequestContext) -> None:
            raise AssertionError("not called")

        table = ApiTable([Api(0, "Produce", 3, 11, never), Api(3, "Metadata", 1, 12, never)])
        answer = await answer_versions(table, 3)
        assert answer.error_code == ErrorCode.none
        assert [(k.api_key, k.min_version, k.max_version) for k in answer.api_keys] == [
            (0, 3, 11),
            (3, 1, 12),
            (18, 0, 4),
        ]
        assert table.find(0, 2) is None and table.find(0, 12) is None and table.find(1, 4) is None
        # A version newer than served: v0's answer, UNSUPPORTED_VERSION, read back by kio.
        frame = encode_response(7, table.unsupported_api_versions())
        assert struct.unpack_from(">ii", frame) == (len(frame) - 4, 7)
        decoded, _ = entity_reader(response_type(18, 0))(frame, 8)
        assert decoded.error_code == ErrorCode.unsupported_version
        assert len(decoded.api_keys) == 3

    run(body())


def test_build_keeps_only_the_fields_a_version_has() -> None:
    v0 = response_type(18, 0)
    answer = build(v0, error_code=ErrorCode.none, api_keys=(), throttle_time=None, later=1)
    assert not hasattr(answer, "throttle_time") and answer.api_keys == ()


def test_topic_ids_are_kafkas_uuids() -> None:
    topic_id = random_resource_id(random.Random(3))
    as_uuid = topic_uuid(topic_id)
    assert base64.urlsafe_b64encode(as_uuid.bytes).rstrip(b"=").decode() == topic_id
    assert topic_uuid("not an id") == uuid.UUID(int=0)


def test_the_listener_registers_a_kafka_endpoint_only_when_configured() -> None:
    assert [e.name for e in BrokerConfig().endpoints()] == ["CLIENT"]
    config = BrokerConfig(listen="127.0.0.1:9092", kafka_listen="0.0.0.0:9093", advertised_host="h")
    kafka = [e for e in config.endpoints() if e.name == KAFKA_LISTENER]
    assert [(e.host, e.port) for e in kafka] == [("h", 9093)]
    with pytest.raises(ConfigFileError, match="kafka_listen"):
        BrokerConfig(kafka_listen="no-port")
