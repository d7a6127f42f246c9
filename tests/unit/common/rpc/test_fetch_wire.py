"""The hand-written FetchResponse codec against the generated class: the same bytes out, the
same answer read back, and malformed bytes refused (where the generated class refuses them)."""

from __future__ import annotations

import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

from raftka.common.rpc.fetch_wire import (
    AbortedTransaction,
    EpochEnd,
    FetchAnswer,
    FetchResult,
    LeaderHint,
    decode_fetch_response,
    encode_fetch_response,
    serialize_fetch,
)
from raftka.common.rpc.wire import WireFormatError, encode_varint, read_varint
from raftka.v1 import broker_pb2 as pb

int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
results = st.builds(
    FetchResult,
    topic=st.text(max_size=20),
    partition=int32,
    error_code=st.integers(0, 120),
    error_message=st.text(max_size=40),
    high_watermark=int64,
    last_stable_offset=int64,
    log_start_offset=int64,
    batches=st.binary(max_size=300),
    diverging_epoch=st.none() | st.builds(EpochEnd, int32, int64),
    current_leader=st.none() | st.builds(LeaderHint, int32, int32),
    aborted_transactions=st.lists(st.builds(AbortedTransaction, int64, int64), max_size=3),
)
answers = st.builds(FetchAnswer, st.lists(results, max_size=4), int32)


def as_generated(answer: FetchAnswer) -> pb.FetchResponse:
    response = pb.FetchResponse(throttle_time_ms=answer.throttle_time_ms)
    for r in answer.results:
        out = response.results.add(
            topic=r.topic,
            partition=r.partition,
            error_code=r.error_code,
            error_message=r.error_message,
            high_watermark=r.high_watermark,
            last_stable_offset=r.last_stable_offset,
            log_start_offset=r.log_start_offset,
            batches=bytes(r.batches),
        )
        if r.diverging_epoch is not None:
            out.diverging_epoch.SetInParent()
            out.diverging_epoch.epoch = r.diverging_epoch.epoch
            out.diverging_epoch.end_offset = r.diverging_epoch.end_offset
        if r.current_leader is not None:
            out.current_leader.SetInParent()
            out.current_leader.leader_id = r.current_leader.leader_id
            out.current_leader.leader_epoch = r.current_leader.leader_epoch
        for a in r.aborted_transactions:
            out.aborted_transactions.add(producer_id=a.producer_id, first_offset=a.first_offset)
    return response


@settings(max_examples=300, deadline=None)
@given(answers)
def test_the_codec_writes_the_generated_class_bytes_and_reads_them_back(
    answer: FetchAnswer,
) -> None:
    encoded = encode_fetch_response(answer)
    assert encoded == as_generated(answer).SerializeToString()
    assert decode_fetch_response(encoded) == answer


@settings(max_examples=300, deadline=None)
@given(answers, st.data())
def test_truncated_answers_are_refused_or_read_as_the_generated_class_reads_them(
    answer: FetchAnswer, data: st.DataObject
) -> None:
    encoded = encode_fetch_response(answer)
    cut = encoded[: data.draw(st.integers(0, max(0, len(encoded) - 1)))]
    try:
        expected = pb.FetchResponse.FromString(cut)
    except DecodeError:
        with pytest.raises(WireFormatError):
            decode_fetch_response(cut)
    else:  # a cut at a field boundary is a shorter, valid message
        assert encode_fetch_response(decode_fetch_response(cut)) == expected.SerializeToString()


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=60))
def test_random_bytes_are_refused_exactly_when_the_generated_class_refuses_them(
    garbage: bytes,
) -> None:
    try:
        expected = pb.FetchResponse.FromString(garbage)
    except DecodeError:
        with pytest.raises(WireFormatError):
            decode_fetch_response(garbage)
        return
    if any(r.records for r in expected.results):
        return  # field 9 (the decoded-records form) is not this codec's
    decoded = decode_fetch_response(garbage)
    assert as_generated(decoded).SerializeToString() == (
        _without_unknown(expected).SerializeToString()
    )


@pytest.mark.parametrize(
    "data",
    [
        bytes([8 << 3 | 3, 8 << 3 | 4]),  # an empty group
        bytes([8 << 3 | 3, 9 << 3 | 3, 1 << 3, 5, 9 << 3 | 4, 8 << 3 | 4, 2 << 3, 7]),  # nested
        bytes([8 << 3 | 3, 1 << 3, 5]),  # never closed
        bytes([8 << 3 | 3, 9 << 3 | 4]),  # closed as another group
        bytes([8 << 3 | 4]),  # closed, never opened
    ],
)
def test_groups_are_skipped_or_refused_as_the_generated_class_does(data: bytes) -> None:
    try:
        expected = pb.FetchResponse.FromString(data)
    except DecodeError:
        with pytest.raises(WireFormatError):
            decode_fetch_response(data)
        return
    assert as_generated(decode_fetch_response(data)).SerializeToString() == (
        _without_unknown(expected).SerializeToString()
    )


def _without_unknown(message: pb.FetchResponse) -> pb.FetchResponse:
    message.DiscardUnknownFields()
    return message


def test_a_length_that_lies_is_refused() -> None:
    good = encode_fetch_response(FetchAnswer([FetchResult("t", 1, batches=b"x" * 100)]))
    # The result claims 1000 more bytes than the message holds.
    _, start = read_varint(memoryview(good), 1, len(good))
    lying = good[:1] + encode_varint(len(good) - start + 1000) + good[start:]
    with pytest.raises(DecodeError):
        pb.FetchResponse.FromString(lying)
    with pytest.raises(WireFormatError, match="claims"):
        decode_fetch_response(lying)


def test_an_overlong_varint_is_refused() -> None:
    with pytest.raises(WireFormatError, match="longer than 10 bytes"):
        decode_fetch_response(b"\x10" + b"\xff" * 11 + b"\x01")


def test_unknown_fields_are_skipped_and_submessages_merge() -> None:
    result = pb.FetchPartitionResult(topic="t", partition=3, batches=b"abc")
    result.diverging_epoch.epoch = 4
    wire = bytearray(pb.FetchResponse(results=[result]).SerializeToString())
    extra = pb.FetchPartitionResult()
    extra.diverging_epoch.end_offset = 9
    # An unknown varint (99), an unknown fixed64 (98), and a second result part (merged in).
    wire += b"\x98\x06\x05" + b"\x91\x06" + bytes(8)
    answer = decode_fetch_response(bytes(wire))
    assert answer.results == [FetchResult("t", 3, batches=b"abc", diverging_epoch=EpochEnd(4, 0))]
    part = result.SerializeToString() + extra.SerializeToString()
    merged = decode_fetch_response(b"\x0a" + encode_varint(len(part)) + part)
    assert merged.results[0].diverging_epoch == EpochEnd(4, 9)
    assert merged.results[0].batches == b"abc"


def test_the_decoded_records_form_goes_through_the_generated_class() -> None:
    response = pb.FetchResponse(results=[pb.FetchPartitionResult(records=[pb.Record(offset=5)])])
    assert serialize_fetch(response) == response.SerializeToString()
