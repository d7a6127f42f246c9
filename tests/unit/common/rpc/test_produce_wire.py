"""The hand-written ProduceRequest reader against the generated class: the same request read,
malformed bytes refused exactly where the generated class refuses them."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from raftka.common.rpc.produce_wire import (
    ProduceCall,
    decode_produce_request,
    encode_produce_request,
)
from raftka.common.rpc.wire import WireFormatError, encode_varint
from raftka.v1 import broker_pb2 as pb

int32 = st.integers(-(2**31), 2**31 - 1)
records = st.lists(st.builds(pb.Record, value=st.binary(max_size=8)), min_size=1, max_size=2)
partitions = st.builds(pb.PartitionProduceData, partition=int32, batches=st.binary(max_size=80)) | (
    st.builds(
        pb.PartitionProduceData,
        partition=int32,
        records=records,
        compression=st.sampled_from([0, 1, 3]),
        producer_id=st.integers(0, 2**40),
    )
)
requests = st.builds(
    pb.ProduceRequest,
    acks=st.sampled_from([-1, 0, 1, 2]),
    timeout_ms=int32,
    transactional_id=st.text(max_size=10),
    topics=st.lists(
        st.builds(
            pb.TopicProduceData,
            topic=st.text(max_size=10),
            partitions=st.lists(partitions, max_size=3),
        ),
        max_size=3,
    ),
)


def as_generated(call: ProduceCall) -> pb.ProduceRequest:
    request = pb.ProduceRequest(
        acks=call.acks, timeout_ms=call.timeout_ms, transactional_id=call.transactional_id
    )
    for t in call.topics:
        topic = request.topics.add(topic=t.topic)
        for p in t.partitions:
            if p.plain is not None:
                assert p.plain.partition == p.partition or not p.partition
                topic.partitions.append(p.plain)
            else:
                topic.partitions.add(partition=p.partition, batches=bytes(p.batches))
    return request


@settings(max_examples=300, deadline=None)
@given(requests)
def test_the_reader_reads_what_the_generated_class_wrote(request: pb.ProduceRequest) -> None:
    wire = request.SerializeToString()
    call = decode_produce_request(wire)
    assert call.size == len(wire)
    assert as_generated(call) == request
    for t in call.topics:
        for p in t.partitions:
            # The batches are slices of the received bytes, not copies.
            assert p.plain is not None or isinstance(p.batches, memoryview | bytes)


@settings(max_examples=300, deadline=None)
@given(requests, st.data())
def test_cut_or_mangled_requests_are_refused_exactly_where_the_generated_class_refuses(
    request: pb.ProduceRequest, data: st.DataObject
) -> None:
    wire = bytearray(request.SerializeToString())
    if wire and data.draw(st.booleans()):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    cut = bytes(wire[: data.draw(st.integers(0, len(wire)))])
    try:
        expected = pb.ProduceRequest.FromString(cut)
    except DecodeError:
        with pytest.raises(WireFormatError):
            decode_produce_request(cut)
        return
    expected.DiscardUnknownFields()
    got = as_generated(decode_produce_request(cut))
    # A plain-records partition is parsed by the generated class, which keeps fields it does
    # not know (a mangled byte can make one inside a record): compare without them.
    got.DiscardUnknownFields()
    assert got == expected


def test_a_partition_length_that_lies_is_refused() -> None:
    partition = pb.PartitionProduceData(partition=1, batches=b"b" * 50).SerializeToString()
    topic = b"\x0a\x01t" + b"\x12" + encode_varint(len(partition) + 100) + partition
    wire = b"\x1a" + encode_varint(len(topic)) + topic
    with pytest.raises(DecodeError):
        pb.ProduceRequest.FromString(wire)
    with pytest.raises(WireFormatError, match="claims"):
        decode_produce_request(wire)


def test_unknown_fields_are_skipped() -> None:
    request = pb.ProduceRequest(acks=-1, topics=[pb.TopicProduceData(topic="t")])
    request.topics[0].partitions.add(partition=2, batches=b"abc")
    wire = request.SerializeToString() + b"\xf8\x07\x01" + b"\x85\x08" + bytes(4)
    call = decode_produce_request(wire)
    assert call.acks == -1
    assert [(p.partition, bytes(p.batches)) for p in call.topics[0].partitions] == [(2, b"abc")]


batch_partitions = st.builds(
    pb.PartitionProduceData, partition=int32, batches=st.binary(max_size=80)
)
batch_requests = st.builds(
    pb.ProduceRequest,
    acks=st.sampled_from([-1, 0, 1, 2]),
    timeout_ms=int32,
    transactional_id=st.text(max_size=10),
    topics=st.lists(
        st.builds(
            pb.TopicProduceData,
            topic=st.text(max_size=10),
            partitions=st.lists(batch_partitions, max_size=3),
        ),
        max_size=3,
    ),
)


@settings(max_examples=300, deadline=None)
@given(batch_requests, st.sampled_from([bytes, bytearray, memoryview]))
def test_the_writer_writes_the_bytes_of_the_generated_class(
    request: pb.ProduceRequest, kind: type[bytes] | type[bytearray] | type[memoryview]
) -> None:
    written = encode_produce_request(
        request.acks,
        request.timeout_ms,
        request.transactional_id,
        [(t.topic, [(p.partition, kind(p.batches)) for p in t.partitions]) for t in request.topics],
    )
    assert written == request.SerializeToString()
