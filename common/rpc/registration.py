"""Adding a generated servicer to a server with some methods' (de)serializers replaced.

The generated ``add_XServicer_to_server`` wires every method to the generated classes'
``FromString`` / ``SerializeToString``. For the hot methods a hand-written codec writes the
same wire bytes without the generated class's copies (fetch_wire.py); :func:`add_servicer`
registers the generated handlers with those methods' codecs swapped, and nothing else changed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc


@dataclass(frozen=True, slots=True)
class Codec:
    """A method's replacement codec; None keeps the generated one for that direction."""

    request_deserializer: Callable[[bytes], Any] | None = None
    response_serializer: Callable[[Any], bytes] | None = None


class _Capture:
    """Stands in for the server while a generated ``add_..._to_server`` runs, keeping the
    method handlers it registers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, _handlers: Any) -> None:
        pass  # rebuilt from the registered handlers

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self.service, self.handlers = service, dict(handlers)


def add_servicer(
    add_to_server: Callable[[Any, Any], None],
    servicer: object,
    server: grpc.aio.Server,
    codecs: Mapping[str, Codec],
) -> None:
    """``add_to_server(servicer, server)`` (a generated function), with the methods named in
    ``codecs`` (short names: "Fetch") using those codecs. Unary-unary and stream-stream
    methods."""
    capture = _Capture()
    add_to_server(servicer, capture)
    if not capture.service:
        raise RuntimeError(f"{add_to_server.__name__} registered no service")
    handlers = capture.handlers
    for method, codec in codecs.items():
        old = handlers[method]
        serializers = {
            "request_deserializer": codec.request_deserializer or old.request_deserializer,
            "response_serializer": codec.response_serializer or old.response_serializer,
        }
        if old.unary_unary is not None:
            handlers[method] = grpc.unary_unary_rpc_method_handler(old.unary_unary, **serializers)
        elif old.stream_stream is not None:
            handlers[method] = grpc.stream_stream_rpc_method_handler(
                old.stream_stream, **serializers
            )
        else:
            raise ValueError(
                f"{capture.service}/{method} is neither a unary-unary nor a stream-stream method"
            )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(capture.service, handlers),)
    )
    server.add_registered_method_handlers(capture.service, handlers)
