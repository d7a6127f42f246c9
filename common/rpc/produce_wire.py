"""ProduceRequest without the generated class, as a broker reads it.

The generated class copies every partition's batches twice as it parses (into the message,
then into a new ``bytes`` when the field is read): 13 us for a 256 KiB request (the
producer's default batch.size) and 93 us for 1 MiB, where this reader takes ~6 us whatever
the size, the batches being ``memoryview`` slices of the received bytes. (For a 16 KiB
request the generated class is faster, 2 us; the difference is noise next to a call's cost.)

A partition given in the plain-records form (any of PartitionProduceData's fields 3-8) is
parsed by the generated class (:attr:`PartitionData.plain`): that form is a convenience path,
not the hot one. Reading follows protobuf's rules (wire.py); malformed bytes raise
:class:`~raftka.common.rpc.wire.WireFormatError`, which fails the call as the generated
class's DecodeError does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.protobuf.message import DecodeError

from raftka.common.rpc.registration import Codec
from raftka.common.rpc.wire import (
    LEN,
    VARINT,
    WireFormatError,
    as_int32,
    fields,
    len_prefix,
    read_string,
    varint_field,
)
from raftka.v1 import broker_pb2 as pb


@dataclass(slots=True)
class PartitionData:
    """raftka.v1.PartitionProduceData: ``batches`` (a slice of the request), or the
    plain-records form as the generated class in ``plain`` (then ``batches`` is unused)."""

    partition: int = 0
    batches: bytes | memoryview = b""
    plain: pb.PartitionProduceData | None = None


@dataclass(slots=True)
class TopicData:
    """raftka.v1.TopicProduceData."""

    topic: str = ""
    partitions: list[PartitionData] = field(default_factory=list)


@dataclass(slots=True)
class ProduceCall:
    """raftka.v1.ProduceRequest, and its size on the wire (quotas count it)."""

    acks: int = 0
    timeout_ms: int = 0
    topics: list[TopicData] = field(default_factory=list)
    transactional_id: str = ""
    size: int = 0


def decode_produce_request(data: bytes) -> ProduceCall:
    """Parse a ProduceRequest; raises WireFormatError for malformed bytes."""
    view = memoryview(data)
    call = ProduceCall(size=len(data))
    for number, wire_type, value, end in fields(view, 0, len(view)):
        if wire_type == VARINT:
            if number == 1:
                call.acks = as_int32(value)
            elif number == 2:
                call.timeout_ms = as_int32(value)
        elif wire_type == LEN:
            if number == 3:
                call.topics.append(_topic(view, value, end))
            elif number == 4:
                call.transactional_id = read_string(view, value, end)
    return call


def _topic(view: memoryview, pos: int, end: int) -> TopicData:
    topic = TopicData()
    for number, wire_type, value, stop in fields(view, pos, end):
        if wire_type == LEN and number == 1:
            topic.topic = read_string(view, value, stop)
        elif wire_type == LEN and number == 2:
            topic.partitions.append(_partition(view, value, stop))
    return topic


def _partition(view: memoryview, pos: int, end: int) -> PartitionData:
    data = PartitionData()
    for number, wire_type, value, stop in fields(view, pos, end):
        if number == 1 and wire_type == VARINT:
            data.partition = as_int32(value)
        elif number == 2 and wire_type == LEN:
            data.batches = view[value:stop]
        elif 3 <= number <= 8:
            data.plain = _plain(view[pos:end])
            return data
    return data


def _plain(view: memoryview) -> pb.PartitionProduceData:
    try:
        return pb.PartitionProduceData.FromString(bytes(view))
    except DecodeError as e:
        raise WireFormatError(f"a partition's records are malformed: {e}") from None


def from_message(request: pb.ProduceRequest) -> ProduceCall:
    """A generated ProduceRequest as the broker receives it (for callers in the process)."""
    return decode_produce_request(request.SerializeToString())


PRODUCE_CODEC = Codec(request_deserializer=decode_produce_request)
"""BrokerService/Produce's server-side codec (registration.py)."""

Batches = bytes | bytearray | memoryview


def encode_produce_request(
    acks: int,
    timeout_ms: int,
    transactional_id: str,
    topics: Iterable[tuple[str, Iterable[tuple[int, Batches]]]],
) -> bytes:
    """A ProduceRequest's bytes, as the generated class would write them, with each
    partition's batches copied once (into the joined result). The generated class copies
    them into the message, and again when serializing: 2 x 200 KiB per request of the
    producer's usual size."""
    parts: list[Batches] = [varint_field(1, acks), varint_field(2, timeout_ms)]
    for topic, partitions in topics:
        name = topic.encode()
        body: list[Batches] = [len_prefix(1, len(name)), name] if name else []
        for partition, batches in partitions:
            head = varint_field(1, partition) + (len_prefix(2, len(batches)) if batches else b"")
            body += (len_prefix(2, len(head) + len(batches)), head, batches)
        parts.append(len_prefix(3, sum(len(b) for b in body)))
        parts += body
    if transactional_id:
        tid = transactional_id.encode()
        parts += (len_prefix(4, len(tid)), tid)
    return b"".join(parts)


PRODUCE_METHOD = "/raftka.v1.BrokerService/Produce"

ProduceRawCall = Callable[..., Awaitable[pb.ProduceResponse]]
"""``call(request: bytes, *, timeout=...) -> ProduceResponse`` (raises AioRpcError): the
request as :func:`encode_produce_request` wrote it."""


def produce_call(channel: grpc.aio.Channel) -> ProduceRawCall:
    """BrokerService/Produce on ``channel``, sending requests already encoded."""
    return cast(
        ProduceRawCall,
        channel.unary_unary(
            PRODUCE_METHOD,
            request_serializer=None,
            response_deserializer=pb.ProduceResponse.FromString,
        ),
    )
