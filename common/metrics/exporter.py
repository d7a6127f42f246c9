"""The HTTP endpoint Prometheus scrapes: ``GET /metrics`` on the node's event loop.

A small asyncio server rather than prometheus_client's threaded ``start_http_server``: the
collectors read the node's state (partitions, Raft progress, coordinator shards), which only
the event loop changes, so collecting on the loop needs no locks and never sees a dict change
size under it. One scrape costs the loop the time of one collection (about a millisecond per
thousand partitions); nothing else of the node waits on the HTTP side.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = structlog.get_logger(__name__)

MAX_REQUEST_HEAD_BYTES = 8192
REQUEST_TIMEOUT_S = 10.0
PATHS = ("/metrics", "/")


class MetricsExporter:
    """Serves ``registry`` at ``http://<listen>/metrics`` from ``start()`` to ``stop()``."""

    def __init__(self, registry: CollectorRegistry, listen: str) -> None:
        self.registry = registry
        host, _, port = listen.rpartition(":")
        self._host = host.strip("[]")
        self._port = int(port)
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        """``host:port`` actually bound (the port is the one the OS gave for port 0)."""
        if self._server is None or not self._server.sockets:
            return f"{self._host}:{self._port}"
        return f"{self._host}:{self._server.sockets[0].getsockname()[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self._host, self._port, limit=MAX_REQUEST_HEAD_BYTES
            )
        except OSError as e:
            raise OSError(
                f"cannot serve metrics on {self._host}:{self._port} ({e.strerror}): is another "
                "process using the port? Change metrics.listen in the node's config"
            ) from e
        log.info("metrics_serving", url=self.url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            method, path = _request_line(head)
            if method not in ("GET", "HEAD"):
                _respond(writer, 405, b"only GET /metrics\n", allow="GET, HEAD")
            elif path.split("?", 1)[0] not in PATHS:
                _respond(writer, 404, b"metrics are at /metrics\n")
            else:
                body = generate_latest(self.registry)
                _respond(writer, 200, body, CONTENT_TYPE_LATEST, head_only=method == "HEAD")
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # a client that sent no whole request within the limits gets nothing
        except Exception as e:  # a failed collection must not take the node down
            log.exception("metrics_scrape_failed", error=repr(e))
            with contextlib.suppress(Exception):
                _respond(writer, 500, f"collecting metrics failed: {e!r}\n".encode())
                await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3:
        return "", ""
    return parts[0], parts[1]


_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    *,
    head_only: bool = False,
    allow: str = "",
) -> None:
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if allow:
        headers.append(f"Allow: {allow}")
    writer.write(("\r\n".join(headers) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(body)
