"""Property tests: the C accelerator and the pure-Python codec agree byte for byte on what
they encode, and outcome for outcome (same result, or the same error with the same message
and byte position) on valid, damaged, truncated and random record streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftka.common.records import pycodec
from tests.unit.common.records.codecs import c_codec

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
BASE = 1_700_000_000_000

field_bytes = st.one_of(st.none(), st.binary(max_size=40))
headers = st.lists(st.tuples(st.text(max_size=8), field_bytes), max_size=3)
timestamps = st.one_of(
    st.integers(BASE - 10**6, BASE + 10**6),
    st.just(-1),
    st.integers(INT64_MIN, INT64_MAX),
)
rows = st.lists(st.tuples(timestamps, field_bytes, field_bytes, headers), max_size=12)
base_timestamps = st.one_of(st.just(BASE), st.just(-1), st.integers(INT64_MIN, INT64_MAX))

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(function: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """What a call did: ("ok", its result) or (the error's type, its message)."""
    try:
        return "ok", function(*args)
    except Exception as exc:
        return type(exc).__name__, str(exc)


def encoded(codec: Any, records: list[Any], base: int) -> tuple[tuple[str, Any], bytes]:
    out = bytearray(b"x")
    return outcome(codec.encode_records, out, records, base, 0, -1), bytes(out)


@SETTINGS
@given(records=rows, base=base_timestamps)
def test_encoders_agree_byte_for_byte(records: list[Any], base: int) -> None:
    c = c_codec()
    assert encoded(c, records, base) == encoded(pycodec, records, base)


@SETTINGS
@given(records=rows)
def test_valid_streams_round_trip_in_both(records: list[Any]) -> None:
    c = c_codec()
    base = records[0][0] if records else BASE
    out = bytearray()
    result = outcome(pycodec.encode_records, out, records, base, 0, -1)
    if result[0] != "ok":
        return  # a delta outside int64: both refuse it (test above)
    stream = bytes(out)
    for codec in (c, pycodec):
        decoded = codec.decode_records(stream, len(records), 61)
        assert [(base + td, k, v, list(h)) for _, td, k, v, h in decoded] == [
            (ts, k, v, h) for ts, k, v, h in records
        ]
        made = codec.decode_records_as(
            stream, len(records), 61, Shaped, ("t",), (3,), 10, base, None, 1
        )
        assert made == [
            Shaped("t", 10 + i, ts, k, v, tuple(h), 3)
            for i, (ts, k, v, h) in enumerate(records)
            if i >= 1
        ]
        stamps = [ts for ts, *_ in records if ts != -1]
        expected = (min(stamps), max(stamps)) if stamps else (-1, -1)
        assert codec.validate_records(stream, len(records), base, 61) == expected


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
        st.integers(0, 10_000),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(stream: bytes, steps: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(stream)
    for kind, where, value in steps:
        at = where % (len(data) + 1)
        if kind == "insert":
            data[at:at] = bytes([value])
        elif kind == "truncate":
            del data[at:]
        elif at < len(data):
            if kind == "flip":
                data[at] ^= 1 << (value % 8)
            elif kind == "set":
                data[at] = value
            else:
                del data[at]
    return bytes(data)


class Shaped(NamedTuple):
    topic: str
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    epoch: int | None


def shapes(base: int) -> list[tuple[Any, ...]]:
    """decode_records_as arguments after (data, count, position): timestamps from the base or
    stamped, every record or from offset delta 1, offsets near int64's ends."""
    return [
        (Shaped, ("t",), (None,), 0, base, None, 0),
        (Shaped, ("t",), (7,), 100, base, BASE, 1),
        (Shaped, ("t",), (None,), INT64_MAX - 1, INT64_MAX, None, 0),
    ]


def same_outcomes(stream: bytes, count: int, base: int) -> None:
    c = c_codec()
    assert outcome(c.validate_records, stream, count, base, 61) == outcome(
        pycodec.validate_records, stream, count, base, 61
    )
    assert outcome(c.decode_records, stream, count, 0) == outcome(
        pycodec.decode_records, stream, count, 0
    )
    for shape in shapes(base):
        made = outcome(c.decode_records_as, stream, count, 0, *shape)
        assert made == outcome(pycodec.decode_records_as, stream, count, 0, *shape)
        if made[0] == "ok":
            assert all(type(r) is Shaped for r in made[1])


small_rows = st.lists(
    st.tuples(
        timestamps,
        field_bytes,
        field_bytes,
        st.lists(st.tuples(st.text(max_size=3), field_bytes), max_size=2),
    ),
    max_size=5,
)


@settings(SETTINGS, max_examples=150)
@given(records=small_rows, steps=MUTATIONS, count_shift=st.integers(-2, 2), base=base_timestamps)
def test_damaged_streams_get_the_same_verdict(
    records: list[Any], steps: list[tuple[str, int, int]], count_shift: int, base: int
) -> None:
    out = bytearray()
    for index, (ts, key, value, hdrs) in enumerate(records):
        # offset deltas as written, timestamps clamped into range so every row encodes
        pycodec.encode_record(
            out, index, max(min(ts - BASE, INT64_MAX), INT64_MIN), key, value, hdrs
        )
    same_outcomes(mutate(bytes(out), steps), max(len(records) + count_shift, 0), base)


@SETTINGS
@given(stream=st.binary(max_size=200), count=st.integers(0, 20), base=base_timestamps)
def test_random_bytes_get_the_same_verdict(stream: bytes, count: int, base: int) -> None:
    same_outcomes(stream, count, base)


def utf8_stream(key: bytes) -> bytes:
    """One record whose only header has ``key`` as its key."""
    body = b"\x00\x00\x00\x01\x01\x02" + bytes([len(key) * 2]) + key + b"\x01"
    return bytes([len(body) * 2]) + body


text_keys = st.text(max_size=3).map(lambda t: t.encode("utf-8", "surrogatepass"))


@SETTINGS
@given(key=st.one_of(st.binary(max_size=6), text_keys), steps=MUTATIONS)
def test_header_key_utf8_checks_agree(key: bytes, steps: list[tuple[str, int, int]]) -> None:
    """The C UTF-8 check is its own code: it must accept exactly what Python's decoder does
    (surrogates, overlong forms, code points past U+10FFFF and cut sequences refused)."""
    for candidate in (key, mutate(key, steps)[:40]):
        same_outcomes(utf8_stream(candidate), 1, BASE)


def test_header_key_utf8_edges_exhaustively() -> None:
    c = c_codec()
    keys = [bytes([a, b]) for a in range(0xC0, 0x100) for b in range(0x70, 0xD0)]
    keys += [bytes([a, b, 0x80]) for a in (0xE0, 0xED, 0xEF, 0xF0) for b in range(0x70, 0xD0)]
    keys += [bytes([a, b, 0x80, 0xBF]) for a in (0xF0, 0xF4, 0xF5) for b in range(0x70, 0xD0)]
    for key in keys:
        try:
            key.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        stream = utf8_stream(key)
        for codec in (c, pycodec):
            try:
                codec.validate_records(stream, 1, BASE, 0)
                accepted = True
            except Exception:
                accepted = False
            assert accepted == valid, (codec.__name__, key.hex())
