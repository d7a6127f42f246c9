"""One gRPC channel per broker address, shared by every request the client sends there."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from raftka.v1.broker_pb2_grpc import BrokerServiceStub

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


class BrokerConnections:
    def __init__(self, options: Sequence[tuple[str, int | str]] = ()) -> None:
        """``options``: extra gRPC channel options (e.g. shorter reconnect backoff)."""
        self._options = [*CHANNEL_OPTIONS, *options]
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, BrokerServiceStub] = {}

    def stub(self, address: str) -> BrokerServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=self._options)
            self._channels[address] = channel
            stub = self._stubs[address] = BrokerServiceStub(channel)
        return stub

    async def close(self) -> None:
        channels, self._channels, self._stubs = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()
