"""add_servicer: the generated registration with some methods' codecs swapped."""

from __future__ import annotations

from typing import Any

import grpc

from raftka.common.rpc.fetch_wire import FETCH_CODEC, serialize_fetch
from raftka.common.rpc.registration import add_servicer
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import BrokerServiceServicer, add_BrokerServiceServicer_to_server


class _Server:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: dict[str, dict[str, grpc.RpcMethodHandler]] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered[service] = dict(handlers)


def test_only_the_named_method_gets_the_codec() -> None:
    server = _Server()
    servicer = BrokerServiceServicer()  # type: ignore[abstract]
    add_servicer(add_BrokerServiceServicer_to_server, servicer, server, {"Fetch": FETCH_CODEC})
    handlers = server.registered["raftka.v1.BrokerService"]
    fetch, produce = handlers["Fetch"], handlers["Produce"]
    assert fetch.response_serializer is serialize_fetch
    assert fetch.request_deserializer == pb.FetchRequest.FromString  # kept
    assert produce.response_serializer == pb.ProduceResponse.SerializeToString
    assert fetch.unary_unary == servicer.Fetch
    # The generic handler serves the same handlers (servers that look methods up there).
    details = type("D", (), {"method": "/raftka.v1.BrokerService/Fetch"})()
    assert server.generic[0].service(details).response_serializer is serialize_fetch


def test_a_stream_method_gets_its_codec_and_stays_a_stream() -> None:
    server = _Server()
    servicer = BrokerServiceServicer()  # type: ignore[abstract]
    add_servicer(
        add_BrokerServiceServicer_to_server,
        servicer,
        server,
        {"ReplicaFetchStream": FETCH_CODEC},
    )
    stream = server.registered["raftka.v1.BrokerService"]["ReplicaFetchStream"]
    assert stream.response_serializer is serialize_fetch
    assert stream.request_deserializer == pb.FetchRequest.FromString
    assert stream.request_streaming and stream.response_streaming
    assert stream.stream_stream == servicer.ReplicaFetchStream
