"""FetchResponse without the generated class: what brokers send and consumers read.

A broker's answer carries up to 55 MiB of stored batches. Through the generated class each
batch is copied into the message (~0.4 ms per MiB) and again when it is serialized; here the
answer is one ``b"".join`` of the field headers and the batches as the log read them, and a
consumer gets each partition's batches with one slice of the received bytes. The bytes on the
wire are the ``.proto``'s (raftka.v1.FetchResponse), identical to what the generated class
writes for the same answer, so clients in other languages see no difference.

``FetchPartitionResult.records`` (field 9, the decoded-records form) is not handled here: a
broker answers ``decode_records`` with the generated class, and :func:`decode_fetch_response`
checks the field but does not keep it (Raftka's consumer never asks for it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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
    as_int64,
    fields,
    len_prefix,
    read_string,
    varint_field,
)
from raftka.v1 import broker_pb2 as pb


@dataclass(slots=True)
class EpochEnd:
    """raftka.v1.EpochEndOffset: where a leader epoch ends in the leader's log."""

    epoch: int = 0
    end_offset: int = 0


@dataclass(slots=True)
class LeaderHint:
    """raftka.v1.LeaderHint: the leader the answering broker knows."""

    leader_id: int = 0
    leader_epoch: int = 0


@dataclass(slots=True)
class AbortedTransaction:
    """raftka.v1.AbortedTransaction."""

    producer_id: int = 0
    first_offset: int = 0


@dataclass(slots=True)
class FetchResult:
    """raftka.v1.FetchPartitionResult without ``records``; None for an absent submessage.
    The defaults are the proto's (a broker sets -1 where the API says so)."""

    topic: str = ""
    partition: int = 0
    error_code: int = 0
    error_message: str = ""
    high_watermark: int = 0
    last_stable_offset: int = 0
    log_start_offset: int = 0
    batches: bytes = b""
    diverging_epoch: EpochEnd | None = None
    current_leader: LeaderHint | None = None
    aborted_transactions: list[AbortedTransaction] = field(default_factory=list)


@dataclass(slots=True)
class FetchAnswer:
    """raftka.v1.FetchResponse."""

    results: list[FetchResult] = field(default_factory=list)
    throttle_time_ms: int = 0


# ---- encoding ----


def encode_fetch_response(answer: FetchAnswer) -> bytes:
    """The answer's wire bytes; each batch buffer is copied once, into the result."""
    parts: list[bytes] = []
    for r in answer.results:
        topic, message = r.topic.encode(), r.error_message.encode()
        head = b"".join(
            (
                len_prefix(1, len(topic)) + topic if topic else b"",
                varint_field(2, r.partition),
                varint_field(3, r.error_code),
                len_prefix(4, len(message)) + message if message else b"",
                varint_field(5, r.high_watermark),
                varint_field(6, r.last_stable_offset),
                varint_field(7, r.log_start_offset),
            )
        )
        nbytes = len(r.batches)
        batches_prefix = len_prefix(8, nbytes) if nbytes else b""
        tail = b"".join(_tail(r))
        size = len(head) + len(batches_prefix) + nbytes + len(tail)
        parts += (len_prefix(1, size), head, batches_prefix, r.batches, tail)
    parts.append(varint_field(2, answer.throttle_time_ms))
    return b"".join(parts)


def _tail(r: FetchResult) -> list[bytes]:
    """Fields 10-12 of a result."""
    out: list[bytes] = []
    if r.diverging_epoch is not None:
        d = r.diverging_epoch
        out.append(_message(10, varint_field(1, d.epoch) + varint_field(2, d.end_offset)))
    if r.current_leader is not None:
        h = r.current_leader
        out.append(_message(11, varint_field(1, h.leader_id) + varint_field(2, h.leader_epoch)))
    for a in r.aborted_transactions:
        out.append(_message(12, varint_field(1, a.producer_id) + varint_field(2, a.first_offset)))
    return out


def _message(number: int, body: bytes) -> bytes:
    return len_prefix(number, len(body)) + body


# ---- decoding ----


def decode_fetch_response(data: bytes) -> FetchAnswer:
    """Parse a FetchResponse (protobuf's rules, see wire.py); each result's ``batches`` is a
    bytes slice of ``data``. Raises WireFormatError for malformed bytes."""
    view = memoryview(data)
    answer = FetchAnswer()
    for number, wire_type, value, end in fields(view, 0, len(view)):
        if number == 1 and wire_type == LEN:
            answer.results.append(_result(data, view, value, end))
        elif number == 2 and wire_type == VARINT:
            answer.throttle_time_ms = as_int32(value)
    return answer


def _result(data: bytes, view: memoryview, pos: int, end: int) -> FetchResult:
    r = FetchResult()
    for number, wire_type, value, stop in fields(view, pos, end):
        if wire_type == VARINT:
            if number == 2:
                r.partition = as_int32(value)
            elif number == 3:
                r.error_code = as_int32(value)
            elif 5 <= number <= 7:
                setattr(r, _INT64_FIELDS[number], as_int64(value))
        elif wire_type == LEN:
            if number == 1:
                r.topic = read_string(view, value, stop)
            elif number == 4:
                r.error_message = read_string(view, value, stop)
            elif number == 8:
                r.batches = data[value:stop]
            elif number == 9:
                _check_record(view, value, stop)
            elif number == 10:
                r.diverging_epoch = _epoch_end(view, value, stop, r.diverging_epoch)
            elif number == 11:
                r.current_leader = _leader_hint(view, value, stop, r.current_leader)
            elif number == 12:
                r.aborted_transactions.append(_aborted(view, value, stop))
    return r


def _check_record(view: memoryview, pos: int, end: int) -> None:
    """A decoded record (field 9) is not kept, but is refused where the generated class
    would refuse it."""
    try:
        pb.Record.FromString(bytes(view[pos:end]))
    except DecodeError as e:
        raise WireFormatError(f"a decoded record at byte {pos} is malformed: {e}") from None


_INT64_FIELDS = {5: "high_watermark", 6: "last_stable_offset", 7: "log_start_offset"}


def _pairs(view: memoryview, pos: int, end: int, into: list[int], int64: bool) -> list[int]:
    """The two varint fields (1 and 2) of a small submessage, merged onto ``into``."""
    for number, wire_type, value, _ in fields(view, pos, end):
        if wire_type == VARINT and number in (1, 2):
            into[number - 1] = as_int64(value) if int64 else as_int32(value)
    return into


def _epoch_end(view: memoryview, pos: int, end: int, old: EpochEnd | None) -> EpochEnd:
    # epoch is an int32, end_offset an int64
    base = [0, 0] if old is None else [old.epoch, old.end_offset]
    for number, wire_type, value, _ in fields(view, pos, end):
        if wire_type == VARINT and number == 1:
            base[0] = as_int32(value)
        elif wire_type == VARINT and number == 2:
            base[1] = as_int64(value)
    return EpochEnd(base[0], base[1])


def _leader_hint(view: memoryview, pos: int, end: int, old: LeaderHint | None) -> LeaderHint:
    base = [0, 0] if old is None else [old.leader_id, old.leader_epoch]
    return LeaderHint(*_pairs(view, pos, end, base, int64=False))


def _aborted(view: memoryview, pos: int, end: int) -> AbortedTransaction:
    return AbortedTransaction(*_pairs(view, pos, end, [0, 0], int64=True))


def serialize_fetch(answer: FetchAnswer | pb.FetchResponse) -> bytes:
    """The response serializer of BrokerService/Fetch: a FetchAnswer through
    :func:`encode_fetch_response`, the generated class (the decoded-records form) as usual."""
    if isinstance(answer, FetchAnswer):
        return encode_fetch_response(answer)
    return answer.SerializeToString()


FETCH_CODEC = Codec(response_serializer=serialize_fetch)
"""BrokerService/Fetch's server-side codec (registration.py)."""


FETCH_METHOD = "/raftka.v1.BrokerService/Fetch"

FetchCall = Callable[..., Awaitable[FetchAnswer]]
"""``call(request: pb.FetchRequest, *, timeout=...) -> FetchAnswer`` (raises AioRpcError)."""


def fetch_call(channel: grpc.aio.Channel) -> FetchCall:
    """BrokerService/Fetch on ``channel``, its answer read by :func:`decode_fetch_response`
    (malformed bytes fail the call with INTERNAL, as with the generated stub)."""
    return cast(
        FetchCall,
        channel.unary_unary(
            FETCH_METHOD,
            request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=decode_fetch_response,
        ),
    )


__all__ = [
    "FETCH_CODEC",
    "AbortedTransaction",
    "EpochEnd",
    "FetchAnswer",
    "FetchResult",
    "LeaderHint",
    "WireFormatError",
    "decode_fetch_response",
    "encode_fetch_response",
    "fetch_call",
    "serialize_fetch",
]
