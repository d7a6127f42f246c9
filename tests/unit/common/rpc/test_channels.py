"""open_channel: one set of options, and the client id on every call when one is given."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from raftka.common.rpc.channels import (
    CHANNEL_OPTIONS,
    CLIENT_ID_KEY,
    client_id_of,
    new_server,
    open_channel,
)
from raftka.v1 import broker_pb2 as pb
from raftka.v1.broker_pb2_grpc import (
    BrokerServiceServicer,
    BrokerServiceStub,
    add_BrokerServiceServicer_to_server,
)


class _Recorder(BrokerServiceServicer):
    def __init__(self) -> None:
        self.client_ids: list[str] = []

    async def Metadata(
        self, request: pb.MetadataRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.MetadataResponse:
        self.client_ids.append(client_id_of(context))
        return pb.MetadataResponse()


async def _client_ids_seen(*client_ids: str, as_metadata: bool = False) -> list[str]:
    recorder = _Recorder()  # type: ignore[abstract]  # only Metadata is called
    server = new_server()
    add_BrokerServiceServicer_to_server(recorder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        for client_id in client_ids:
            if as_metadata:  # as a client in another language sends it
                async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                    await BrokerServiceStub(channel).Metadata(
                        pb.MetadataRequest(), timeout=5, metadata=((CLIENT_ID_KEY, client_id),)
                    )
                continue
            async with open_channel(f"127.0.0.1:{port}", client_id=client_id) as channel:
                await BrokerServiceStub(channel).Metadata(pb.MetadataRequest(), timeout=5)
    finally:
        await server.stop(None)
    return recorder.client_ids


def test_the_client_id_reaches_the_server_on_every_call() -> None:
    seen = asyncio.run(_client_ids_seen("billing-producer", "", "my app/2", "x" * 1000))
    assert seen == ["billing-producer", "", "my app/2", "x" * 255]


def test_a_client_id_sent_as_request_metadata_is_read_too() -> None:
    assert asyncio.run(_client_ids_seen("go-consumer", as_metadata=True)) == ["go-consumer"]


def test_every_channel_allows_the_same_large_messages() -> None:
    options = dict(CHANNEL_OPTIONS)
    assert options["grpc.max_send_message_length"] == options["grpc.max_receive_message_length"]
    assert options["grpc.max_receive_message_length"] == 64 * 1024 * 1024
