"""Fetch answers framed around file regions: the parts, with the regions read in place, are
byte for byte the frame kio encodes with the records in the message (every served Fetch
version, flexible or not, with null, empty and large records fields); kio decodes them; and
``send_answer`` puts exactly those bytes on a socket with ``sendfile``, failing (not sending a
short frame) when the file was cut after the read."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader

from raftka.broker.kafka.fetch import FETCH_KEY
from raftka.broker.kafka.framing import encode_response
from raftka.broker.kafka.regions import WithRegions, encode_answer, encode_with_regions
from raftka.broker.kafka.schema import NO_THROTTLE, build, nested, response_type
from raftka.broker.kafka.sendfile import send_answer
from raftka.common.storage.region import FileRegion, open_regions

T = TypeVar("T")
CORRELATION_ID = 4711
# Sizes around the varint steps of the compact length (127/128, 16383/16384) and a large one.
RECORD_SIZES = [0, 1, 126, 127, 128, 16_382, 16_383, 16_384, 300_000]


def segment_file(tmp_path: Path, sizes: list[int]) -> tuple[Path, list[tuple[int, bytes]]]:
    """A file holding one random blob per size (after a 100-byte lead): (position, blob)."""
    path = tmp_path / "00000000000000000000.log"
    blobs: list[tuple[int, bytes]] = []
    with open(path, "wb") as f:
        f.write(os.urandom(100))
        for size in sizes:
            blobs.append((f.tell(), os.urandom(size)))
            f.write(blobs[-1][1])
    return path, blobs


def fetch_response(version: int, records: list[Any]) -> Any:
    answer_type = response_type(FETCH_KEY, version)
    data_type = nested(answer_type, "PartitionData")
    parts = [
        build(
            data_type,
            partition_index=i,
            error_code=ErrorCode.none,
            high_watermark=1000 + i,
            last_stable_offset=1000 + i,
            log_start_offset=i,
            aborted_transactions=None,
            preferred_read_replica=-1,
            records=r,
        )
        for i, r in enumerate(records)
    ]
    topic_type = nested(answer_type, "FetchableTopicResponse")
    return build(
        answer_type,
        throttle_time=NO_THROTTLE,
        error_code=ErrorCode.none,
        session_id=0,
        responses=(
            build(topic_type, topic="events", partitions=tuple(parts[::2])),
            build(topic_type, topic="other", partitions=tuple(parts[1::2])),
        ),
    )


def with_regions(path: Path, version: int, blobs: list[tuple[int, bytes]]) -> WithRegions:
    """Regions for every blob, and a partition with null records between each pair."""
    answer = WithRegions(None)
    fd = os.open(path, os.O_RDONLY)
    try:
        records: list[Any] = []
        for position, blob in blobs:
            records += [answer.add(FileRegion.duplicate(fd, position, len(blob))), None]
    finally:
        os.close(fd)
    answer.response = fetch_response(version, records)
    return answer


def joined(parts: list[bytes | FileRegion]) -> bytes:
    return b"".join(p if isinstance(p, bytes) else p.read() for p in parts)


@pytest.mark.parametrize("version", [4, 7, 11, 12])
def test_the_parts_are_the_frame_kio_encodes_byte_for_byte(tmp_path: Path, version: int) -> None:
    path, blobs = segment_file(tmp_path, RECORD_SIZES)
    answer = with_regions(path, version, blobs)
    parts = encode_with_regions(CORRELATION_ID, answer)
    assert sum(isinstance(p, FileRegion) for p in parts) == len(blobs)
    records: list[Any] = []
    for _, blob in blobs:
        records += [blob, None]
    buffered = encode_response(CORRELATION_ID, fetch_response(version, records))
    framed = joined(parts)
    assert framed == buffered
    assert int.from_bytes(framed[:4], "big") == len(framed) - 4
    # And kio reads it back: header, then every records field in place.
    answer_type = response_type(FETCH_KEY, version)
    header, used = entity_reader(answer_type.__header_schema__)(framed[4:], 0)
    assert header.correlation_id == CORRELATION_ID
    body, _ = entity_reader(answer_type)(framed[4:], used)
    got = [p.records for t in body.responses for p in t.partitions]
    assert got == records[::2] + records[1::2]  # topic "events" holds the even partitions
    answer.close()


def test_an_answer_without_regions_is_one_frame() -> None:
    response = fetch_response(12, [b"", None])
    assert encode_answer(1, response) == encode_response(1, response)
    assert encode_with_regions(1, WithRegions(response)) == [encode_response(1, response)]


def run_on(loop_name: str, coro: Coroutine[Any, Any, T]) -> T:
    """``coro`` on asyncio's own loop or on uvloop (the broker's)."""
    loop = uvloop.new_event_loop() if loop_name == "uvloop" else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, 20))
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_send_answer_writes_the_frame_with_sendfile(tmp_path: Path, loop_name: str) -> None:
    path, blobs = segment_file(tmp_path, [2_000_000, 5, 70_000])
    before = open_regions()
    answer = with_regions(path, 12, blobs)
    assert open_regions() == before + 3
    parts = encode_with_regions(CORRELATION_ID, answer)
    expected = joined(parts)

    async def body() -> bytes:
        server_sock, client_sock = socket.socketpair()
        # A small socket buffer makes the send wait for the reader (the poll path).
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16_384)
        _, writer = await asyncio.open_connection(sock=server_sock)
        peer_reader, peer_writer = await asyncio.open_connection(sock=client_sock)
        sending = asyncio.create_task(send_answer(writer, parts, timeout_s=10))
        got = await peer_reader.readexactly(len(expected))
        await sending
        writer.close()
        peer_writer.close()
        return got

    assert run_on(loop_name, body()) == expected
    assert all(r.closed for r in answer.regions), "the regions' descriptors are closed"
    assert open_regions() == before


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_file_cut_after_the_read_fails_the_send(tmp_path: Path, loop_name: str) -> None:
    path, blobs = segment_file(tmp_path, [50_000])
    answer = with_regions(path, 12, blobs)
    parts = encode_with_regions(CORRELATION_ID, answer)
    os.truncate(path, 100 + 20_000)

    async def body() -> None:
        server_sock, client_sock = socket.socketpair()
        _, writer = await asyncio.open_connection(sock=server_sock)
        peer_reader, peer_writer = await asyncio.open_connection(sock=client_sock)
        drain = asyncio.create_task(peer_reader.read(1 << 20))
        with pytest.raises(ConnectionError, match="ended 30000 bytes early"):
            await send_answer(writer, parts, timeout_s=10)
        writer.close()
        peer_writer.close()
        drain.cancel()

    run_on(loop_name, body())
    assert all(r.closed for r in answer.regions)
