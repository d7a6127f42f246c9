"""One gRPC channel per broker address, shared by every request the client sends there."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from raftka.client.produce_stream import ProduceStream
from raftka.common.rpc.channels import open_channel
from raftka.common.rpc.fetch_wire import FetchCall, fetch_call
from raftka.common.security.tls import ChannelSecurity
from raftka.v1.broker_pb2_grpc import BrokerServiceStub
from raftka.v1.groups_pb2_grpc import GroupServiceStub
from raftka.v1.transactions_pb2_grpc import TransactionServiceStub


class BrokerConnections:
    def __init__(
        self,
        options: Sequence[tuple[str, int | str]] = (),
        *,
        client_id: str = "",
        security: ChannelSecurity | None = None,
    ) -> None:
        """``options``: extra gRPC channel options (e.g. shorter reconnect backoff);
        ``client_id``: sent with every request, so brokers can say whose requests they see;
        ``security``: TLS, client certificate, bearer token (None: plaintext)."""
        self.security = security
        self._options = list(options)
        self._client_id = client_id
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, BrokerServiceStub] = {}
        self._fetch_calls: dict[str, FetchCall] = {}
        self._produce_streams: dict[str, ProduceStream] = {}
        self._group_stubs: dict[str, GroupServiceStub] = {}
        self._txn_stubs: dict[str, TransactionServiceStub] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = open_channel(
                address, self._options, client_id=self._client_id, security=self.security
            )
            self._channels[address] = channel
        return channel

    def stub(self, address: str) -> BrokerServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            stub = self._stubs[address] = BrokerServiceStub(self._channel(address))
        return stub

    def fetch(self, address: str) -> FetchCall:
        """BrokerService/Fetch to ``address``, answered as a FetchAnswer (fetch_wire.py: the
        batches are slices of the received bytes, with no generated message in between)."""
        call = self._fetch_calls.get(address)
        if call is None:
            call = self._fetch_calls[address] = fetch_call(self._channel(address))
        return call

    def produce(self, address: str) -> ProduceStream:
        """BrokerService/ProduceStream to ``address`` (one per broker: requests answered in
        order), called like the unary Produce with a request already encoded
        (produce_wire.encode_produce_request)."""
        stream = self._produce_streams.get(address)
        if stream is None:
            stream = self._produce_streams[address] = ProduceStream(self._channel(address))
        return stream

    def group_stub(self, address: str) -> GroupServiceStub:
        """The broker's GroupService (consumer groups, committed offsets), on the same
        channel as its BrokerService."""
        stub = self._group_stubs.get(address)
        if stub is None:
            stub = self._group_stubs[address] = GroupServiceStub(self._channel(address))
        return stub

    def txn_stub(self, address: str) -> TransactionServiceStub:
        """The broker's TransactionService (transactional producers), on the same channel."""
        stub = self._txn_stubs.get(address)
        if stub is None:
            stub = self._txn_stubs[address] = TransactionServiceStub(self._channel(address))
        return stub

    async def close(self) -> None:
        channels, self._channels, self._stubs = self._channels, {}, {}
        streams, self._produce_streams = self._produce_streams, {}
        for stream in streams.values():
            await stream.close()
        self._fetch_calls = {}
        self._group_stubs, self._txn_stubs = {}, {}
        for channel in channels.values():
            await channel.close()
