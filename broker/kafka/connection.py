"""One Kafka client connection: read requests, serve them, answer in order.

Requests are read ahead and served concurrently up to ``max_in_flight`` (a client pipelines
them), and answered in the order they came, as Kafka's protocol requires; reading waits while
``max_in_flight`` requests are unanswered. An answer carrying file regions (a Fetch's
records) is sent with ``sendfile`` (broker/kafka/sendfile.py) on a plaintext connection.
Anything that breaks the protocol (framing, limits, an unknown API or version, bytes that do
not parse, a handler that fails) closes the connection with one log line; other connections
are not affected.

Until the connection is authenticated (SASL_SSL), its frames go to sasl.py's
:class:`ConnectionAuth` one at a time; afterwards each request is served with the
connection's :class:`~raftka.common.security.caller.Caller` bound, so the handlers'
``backend.guard`` checks see who is asking."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import structlog

from raftka.broker.kafka.dispatch import API_VERSIONS_KEY, ApiTable, RequestContext
from raftka.broker.kafka.framing import (
    FrameError,
    Limits,
    PeerClosed,
    RequestHead,
    encode_response,
    parse_request,
    peek_head,
    read_frame,
)
from raftka.broker.kafka.regions import Answer, encode_answer
from raftka.broker.kafka.sasl import ConnectionAuth
from raftka.broker.kafka.sendfile import can_sendfile, send_answer
from raftka.common.security.caller import Caller, bind_caller
from raftka.common.security.model import ANONYMOUS

log = structlog.get_logger(__name__)

_Pending = asyncio.Task[Answer | None]


class KafkaConnection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        apis: ApiTable,
        limits: Limits,
        auth: ConnectionAuth | None = None,
    ) -> None:
        """``auth``: who is on the connection (default: an anonymous, plaintext one)."""
        self._reader = reader
        self._writer = writer
        self._apis = apis
        self._limits = limits
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        host = peer[0] if isinstance(peer, tuple) else ""
        self._auth = auth or ConnectionAuth(host=host, caller=Caller(ANONYMOUS, host, False))
        self._callers: dict[str, Caller] = {}
        self._pending: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self._slots = asyncio.Semaphore(limits.max_in_flight)
        """One per request read and not yet answered: reading waits for a free one."""
        self.zero_copy = limits.sendfile and can_sendfile(writer)
        """Fetch answers send records from the segment files (``sendfile``); off under TLS."""

    async def serve(self) -> None:
        answers = asyncio.create_task(self._answer_in_order())
        try:
            await self._read_requests()
        except PeerClosed:
            pass
        except FrameError as e:
            log.warning("kafka_connection_closed", peer=self.peer, reason=e.reason, error=e.message)
        except ConnectionError as e:
            log.info("kafka_connection_lost", peer=self.peer, error=str(e))
        finally:
            # Requests being served finish (a write is not cut in half); their answers are
            # not sent: the connection is gone.
            answers.cancel()
            while not self._pending.empty():
                task = self._pending.get_nowait()
                if task is not None:
                    task.add_done_callback(_forget)
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await answers
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()

    async def _read_requests(self) -> None:
        while True:
            await self._slots.acquire()
            frame = await read_frame(self._reader, self._auth.limits(self._limits))
            if not self._auth.authenticated:
                await self._authenticate(frame)
                self._slots.release()
                continue
            head = peek_head(frame)
            api = self._apis.find(head.api_key, head.api_version)
            if api is None:
                if head.api_key == API_VERSIONS_KEY and head.api_version >= 0:
                    answer = encode_response(
                        head.correlation_id, self._apis.unsupported_api_versions()
                    )
                    await self._pending.put(_done(answer))
                    continue
                known = self._apis.known(head.api_key)
                raise FrameError(
                    "unsupported_api",
                    f"API key {head.api_key} version {head.api_version} is not served"
                    + (
                        f" ({known.name} is served at v{known.min_version}-v{known.max_version})"
                        if known is not None
                        else ""
                    )
                    + ": ask ApiVersions what is",
                )
            try:
                client_id, request = parse_request(frame, head)
            except Exception as e:  # kio raises several kinds for bytes that do not parse
                raise FrameError(
                    "malformed_request", f"{api.name} v{head.api_version} does not parse: {e!r}"
                ) from None
            context = RequestContext(
                head.api_key,
                head.api_version,
                head.correlation_id,
                client_id or "",
                self.peer,
                zero_copy=self.zero_copy,
            )
            task = asyncio.create_task(
                self._serve_one(api.handle, request, context, head, self._caller(api.name))
            )
            await self._pending.put(task)

    async def _authenticate(self, frame: bytes) -> None:
        """One frame before authentication, answered before the next is read."""
        answer = await self._auth.serve_unauthenticated(frame, self._apis)
        self._writer.write(answer)
        await self._writer.drain()
        if self._auth.failure is not None:
            raise FrameError("authentication_failed", self._auth.failure)
        if self._auth.caller is not None:
            log.info("kafka_authenticated", peer=self.peer, principal=self._auth.caller.principal)

    def _caller(self, api_name: str) -> Caller:
        caller = self._callers.get(api_name)
        if caller is None:
            assert self._auth.caller is not None
            caller = replace(self._auth.caller, method=f"kafka:{api_name}")
            self._callers[api_name] = caller
        return caller

    async def _serve_one(
        self,
        handle: object,
        request: object,
        context: RequestContext,
        head: RequestHead,
        caller: Caller,
    ) -> Answer | None:
        bind_caller(caller)  # this task's own context: the guard's checks see it
        response = await handle(request, context)  # type: ignore[operator]
        if response is None:
            return None
        return encode_answer(head.correlation_id, response)

    async def _answer_in_order(self) -> None:
        while True:
            task = await self._pending.get()
            if task is None:
                return
            try:
                answer = await asyncio.shield(task)
            except Exception:
                log.exception("kafka_request_failed", peer=self.peer)
                # The client would wait for this answer forever: close instead.
                self._writer.close()
                return
            if answer is not None:
                try:
                    await send_answer(self._writer, answer, timeout_s=self._limits.idle_timeout_s)
                except OSError as e:  # a region cut short, a client that stopped reading
                    log.warning(
                        "kafka_connection_closed",
                        peer=self.peer,
                        reason="send_failed",
                        error=str(e),
                    )
                    self._writer.transport.abort()  # the frame is half sent: nothing can follow
                    return
            self._slots.release()


def _forget(task: _Pending) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("kafka_request_failed_after_close", error=repr(task.exception()))


def _done(answer: bytes) -> _Pending:
    async def ready() -> Answer | None:
        return answer

    return asyncio.ensure_future(ready())
