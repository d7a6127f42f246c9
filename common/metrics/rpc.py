"""Per-RPC metrics and request ids: a gRPC aio server interceptor every node server runs.

For each call it counts the request, times it, counts a failure by gRPC status and Raftka error
code (the ``raftka-error`` trailing metadata of common/rpc/status.py), and binds a fresh
``request_id`` in structlog's context, so every line the handler logs carries it; a failed or
refused call is logged once here (``rpc_failed``) with that id, its status and error code.

Labels stay bounded: ``service`` and ``method`` come from the methods the server registered
(an unknown method never reaches a handler, so it is not counted), ``code`` from gRPC's status
codes and ``error`` from Raftka's error code names. A streaming RPC's duration is its lifetime.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog
from prometheus_client import CollectorRegistry

from raftka.common.metrics.spec import MetricKind, MetricSpec

log = structlog.get_logger(__name__)

ERROR_KEY = "raftka-error"  # the trailing-metadata key common/rpc/status.py sets

RPC_REQUESTS = MetricSpec(
    "raftka_rpc_requests_total",
    MetricKind.COUNTER,
    "RPCs this node served (counted when they end), by service and method.",
    ("service", "method"),
)
RPC_ERRORS = MetricSpec(
    "raftka_rpc_errors_total",
    MetricKind.COUNTER,
    "RPCs that ended with a status other than OK, by gRPC status code and Raftka error code "
    "(error is empty when the server set none). Errors inside a successful response (per "
    "partition) are not counted here.",
    ("service", "method", "code", "error"),
)
RPC_DURATION = MetricSpec(
    "raftka_rpc_request_duration_seconds",
    MetricKind.HISTOGRAM,
    "Time from a call reaching its handler to its end (a stream's whole life), by service "
    "and method.",
    ("service", "method"),
)
RPC_METRICS = (RPC_REQUESTS, RPC_ERRORS, RPC_DURATION)

DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def new_request_id() -> str:
    """A random 64-bit id in hex: unique enough to find one call's lines across nodes."""
    return os.urandom(8).hex()


class RpcMetrics:
    """The RPC metrics of one node (one per registry; every server of the node shares it)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = RPC_REQUESTS.counter(registry)
        self._errors = RPC_ERRORS.counter(registry)
        self._duration = RPC_DURATION.histogram(registry, DURATION_BUCKETS)
        self._methods: dict[str, _MethodStats] = {}

    def method(self, full_name: str) -> _MethodStats:
        """The stats of ``/package.Service/Method`` (created on its first call)."""
        stats = self._methods.get(full_name)
        if stats is None:
            service, _, method = full_name.lstrip("/").rpartition("/")
            service = service.rsplit(".", 1)[-1]
            stats = self._methods[full_name] = _MethodStats(self, service, method)
        return stats

    def interceptor(self) -> MetricsInterceptor:
        return MetricsInterceptor(self)


class _MethodStats:
    __slots__ = ("_metrics", "duration", "method", "requests", "service")

    def __init__(self, metrics: RpcMetrics, service: str, method: str) -> None:
        self._metrics = metrics
        self.service = service
        self.method = method
        self.requests = metrics._requests.labels(service, method)
        self.duration = metrics._duration.labels(service, method)

    def ended(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        started: float,
        raised: BaseException | None,
    ) -> None:
        """Count a call that ended; ``raised`` is what its handler raised other than an abort
        (an abort's status is the context's)."""
        self.requests.inc()
        self.duration.observe(time.perf_counter() - started)
        code = context.code()
        if raised is not None and code in (None, grpc.StatusCode.OK):
            cancelled = isinstance(raised, asyncio.CancelledError)
            code = grpc.StatusCode.CANCELLED if cancelled else grpc.StatusCode.UNKNOWN
        if code is None or code == grpc.StatusCode.OK:
            return
        error = _error_code(context)
        code_name = code.name if isinstance(code, grpc.StatusCode) else str(code)
        self._metrics._errors.labels(self.service, self.method, code_name, error).inc()
        if code == grpc.StatusCode.CANCELLED or error in _ROUTINE_REDIRECTS:
            # The caller went away (a closed stream, an abandoned long poll), or was sent to
            # the node that can answer: routine, not worth an info line each.
            level = log.debug
        elif code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            level = log.warning
        else:
            level = log.info
        level(
            "rpc_failed",
            service=self.service,
            method=self.method,
            code=code_name,
            error=error,
            details=context.details() or (repr(raised) if raised is not None else ""),
        )


_ROUTINE_REDIRECTS = frozenset({"NOT_CONTROLLER", "NOT_COORDINATOR", "NOT_LEADER_OR_FOLLOWER"})


def _error_code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.trailing_metadata() or ():
        if key == ERROR_KEY:
            return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    return ""


Handler = Callable[..., Any]


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc.aio is untyped here
    """Wraps every registered method's handler; the wrapped handler is built once per method."""

    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method: gRPC answers UNIMPLEMENTED
        method: str = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, self._metrics.method(method))
        self._wrapped[method] = (handler, wrapped)
        return wrapped


def _wrap(handler: grpc.RpcMethodHandler, stats: _MethodStats) -> grpc.RpcMethodHandler:
    kinds = (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    )
    for attr, make in kinds:
        behavior = getattr(handler, attr)
        if behavior is not None:
            return make(
                _timed(behavior, stats),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


def _timed(behavior: Handler, stats: _MethodStats) -> Handler:
    if inspect.isasyncgenfunction(behavior):

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            structlog.contextvars.bind_contextvars(request_id=new_request_id())
            started = time.perf_counter()
            raised: BaseException | None = None
            try:
                async for item in behavior(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except BaseException as e:
                raised = e
                raise
            finally:
                stats.ended(context, started, raised)

        return stream

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        # Each call runs in a task of its own, so what is bound here stays with this call.
        structlog.contextvars.bind_contextvars(request_id=new_request_id())
        started = time.perf_counter()
        raised: BaseException | None = None
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise
        except BaseException as e:
            raised = e
            raise
        finally:
            stats.ended(context, started, raised)

    return call
