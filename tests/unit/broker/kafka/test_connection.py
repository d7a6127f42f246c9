"""One Kafka connection over a real socket on 127.0.0.1: an idle connection is closed with its
log line (kafka_connections_max_idle_ms); requests are read ahead up to kafka_max_in_flight
and no further, and a client pipelining more than that still gets every answer, in order,
whatever order they are served in; answers with file regions go out with ``sendfile`` in their
place in that order (and not on a connection told not to)."""

from __future__ import annotations

import asyncio
import os
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kio.schema.errors import ErrorCode
from structlog.testing import capture_logs

from raftka.broker.kafka.connection import KafkaConnection
from raftka.broker.kafka.dispatch import Api, ApiTable, RequestContext
from raftka.broker.kafka.framing import Limits, encode_response
from raftka.broker.kafka.regions import WithRegions
from raftka.broker.kafka.schema import build, response_type
from raftka.common.storage.region import FileRegion
from tests.conditions import until
from tests.unit.broker.kafka.test_framing import metadata_v12_frame
from tests.unit.broker.kafka.test_regions import fetch_response

Handler = Callable[[Any, RequestContext], Any]


def request(correlation_id: int) -> bytes:
    """A size-prefixed Metadata request."""
    frame = metadata_v12_frame(correlation_id)
    return struct.pack(">i", len(frame)) + frame


def small_answer() -> Any:
    return build(response_type(18, 0), error_code=ErrorCode.none, api_keys=())


@asynccontextmanager
async def serving(handler: Handler, limits: Limits) -> AsyncIterator[tuple[Any, Any]]:
    """A listener on 127.0.0.1 serving Metadata (key 3) with ``handler``; yields a client
    connection to it."""
    table = ApiTable([Api(3, "Metadata", 1, 12, handler)])

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await KafkaConnection(reader, writer, table, limits).serve()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(correlation id, whole frame) of the next answer."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    body = await reader.readexactly(size)
    return struct.unpack_from(">i", body)[0], struct.pack(">i", size) + body


def limits(**values: Any) -> Limits:
    base = {"max_request_bytes": 1 << 20, "read_timeout_s": 5.0, "idle_timeout_s": 30.0}
    return Limits(**{**base, "max_in_flight": 4, **values})


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))


def test_an_idle_connection_is_closed_with_a_log_line() -> None:
    async def handler(_request: Any, _context: RequestContext) -> Any:
        return small_answer()

    async def body() -> None:
        with capture_logs() as logs:
            async with serving(handler, limits(idle_timeout_s=0.3)) as (reader, writer):
                writer.write(request(1))
                assert (await read_answer(reader))[0] == 1
                assert await reader.read() == b"", "the broker closed the idle connection"
        closed = [e for e in logs if e["event"] == "kafka_connection_closed"]
        assert [e["reason"] for e in closed] == ["idle"]
        assert "connections.max.idle.ms" in closed[0]["error"]

    run(body())


def test_pipelined_requests_beyond_max_in_flight_are_all_answered_in_order() -> None:
    limit, sent = 3, 12
    started: list[int] = []
    running: set[int] = set()
    most_running = 0
    gates = {c: asyncio.Event() for c in range(sent)}

    async def handler(_request: Any, context: RequestContext) -> Any:
        nonlocal most_running
        started.append(context.correlation_id)
        running.add(context.correlation_id)
        most_running = max(most_running, len(running))
        await gates[context.correlation_id].wait()
        running.discard(context.correlation_id)
        return small_answer()

    async def body() -> None:
        async with serving(handler, limits(max_in_flight=limit)) as (reader, writer):
            writer.write(b"".join(request(c) for c in range(sent)))
            answers: list[int] = []
            while len(answers) < sent:
                await until(lambda: bool(running), what="a request being served")
                await until(lambda: len(running) == min(limit, sent - len(answers)))
                # Served last first: the answers still go back in request order.
                for c in sorted(running, reverse=True):
                    gates[c].set()
                for _ in range(min(limit, sent - len(answers))):
                    answers.append((await read_answer(reader))[0])
            assert answers == list(range(sent))
        assert started == list(range(sent))
        assert most_running == limit, "read ahead up to the limit and no further"

    run(body())


def test_answers_with_file_regions_go_out_in_order_between_the_others(tmp_path: Path) -> None:
    path = tmp_path / "segment.log"
    blob = os.urandom(300_000)
    path.write_bytes(b"x" * 10 + blob)
    contexts: list[RequestContext] = []

    async def handler(_request: Any, context: RequestContext) -> Any:
        contexts.append(context)
        if context.correlation_id % 2:
            return small_answer()
        if not context.zero_copy:
            return fetch_response(12, [blob])
        answer = WithRegions(None)
        fd = os.open(path, os.O_RDONLY)
        marker = answer.add(FileRegion.duplicate(fd, 10, len(blob)))
        os.close(fd)
        answer.response = fetch_response(12, [marker])
        return answer

    expected = {
        c: encode_response(c, fetch_response(12, [blob]) if c % 2 == 0 else small_answer())
        for c in range(6)
    }

    async def body(sendfile: bool) -> None:
        contexts.clear()
        async with serving(handler, limits(sendfile=sendfile)) as (reader, writer):
            writer.write(b"".join(request(c) for c in range(6)))
            for c in range(6):
                got_id, frame = await read_answer(reader)
                assert got_id == c and frame == expected[c]
        assert {ctx.zero_copy for ctx in contexts} == {sendfile}

    run(body(True))
    run(body(False))


def test_a_region_cut_short_closes_the_connection_with_a_log_line(tmp_path: Path) -> None:
    path = tmp_path / "segment.log"
    path.write_bytes(os.urandom(100_000))

    async def handler(_request: Any, context: RequestContext) -> Any:
        answer = WithRegions(None)
        fd = os.open(path, os.O_RDONLY)
        marker = answer.add(FileRegion.duplicate(fd, 0, 100_000))
        os.close(fd)
        os.truncate(path, 60_000)  # as a truncation between the read and the send would
        answer.response = fetch_response(12, [marker])
        return answer

    async def body() -> None:
        with capture_logs() as logs:
            async with serving(handler, limits()) as (reader, writer):
                writer.write(request(1))
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                rest = await reader.read(size + 1)
                while rest and len(rest) < size:
                    more = await reader.read(size)
                    if not more:
                        break
                    rest += more
                assert len(rest) < size, "the frame was not completed"
                assert await reader.read() == b"", "and the connection was closed"
        closed = [e for e in logs if e["event"] == "kafka_connection_closed"]
        assert [e["reason"] for e in closed] == ["send_failed"]
        assert "ended 40000 bytes early" in closed[0]["error"]

    run(body())
