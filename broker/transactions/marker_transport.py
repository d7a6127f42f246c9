"""How the marker sender reaches partition leaders: their identity from the broker's metadata
image, and WriteTxnMarkers over gRPC to their INTERNAL listener (one channel per broker, kept
open). Markers for partitions this broker leads skip the network: they go straight to the
local marker writer (``marker_writer.MarkerWriter``). Either way the fault injector's MARKERS
path is asked first (peer = the destination broker), so tests can hold a decided transaction's
markers back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import grpc

from raftka.common.errors import NetworkError
from raftka.common.faults import FAULTS, Direction, FaultPath
from raftka.common.metadata.image import MetadataImage
from raftka.common.rpc.channels import open_channel
from raftka.v1 import transactions_pb2 as tpb
from raftka.v1.transactions_pb2_grpc import TransactionServiceStub

WRITE_MARKERS_TIMEOUT_S = 40.0
"""The deadline of one WriteTxnMarkers call (the leader waits up to 30 s for replication)."""


class LocalMarkerWriter(Protocol):
    async def write(self, request: tpb.WriteTxnMarkersRequest) -> tpb.WriteTxnMarkersResponse: ...


class ImageMarkerRouting:
    """:class:`~raftka.broker.transactions.marker_sender.MarkerRouting` over the image."""

    def __init__(self, image: Callable[[], MetadataImage]) -> None:
        self._image = image

    def marker_leader(self, topic: str, partition: int) -> int | None:
        found = self._image().topic(topic)
        state = None if found is None else found.partitions.get(partition)
        return None if state is None else state.leader


class BrokerChannels:
    """gRPC channels to other brokers' INTERNAL listeners (their CLIENT listener when they
    registered no INTERNAL one), found in the metadata image and kept open (one per address),
    shared by the marker transport and the partition leaders' transaction verification."""

    def __init__(self, image: Callable[[], MetadataImage]) -> None:
        self._image = image
        self._channels: dict[str, grpc.aio.Channel] = {}

    def transactions(self, broker_id: int) -> TransactionServiceStub:
        """A TransactionService stub for ``broker_id``; NetworkError when the image has no
        listener for it."""
        address = self.address(broker_id)
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = open_channel(address)
        return TransactionServiceStub(channel)

    def address(self, broker_id: int) -> str:
        """Where this broker calls ``broker_id``: its INTERNAL listener if it registered one,
        else its CLIENT listener; NetworkError when the image has neither."""
        reg = self._image().broker(broker_id)
        endpoint = None if reg is None else reg.internal_endpoint()
        if endpoint is None:
            raise NetworkError(f"broker {broker_id} has no listener in the metadata image")
        return f"{endpoint.host}:{endpoint.port}"

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()


class GrpcMarkerTransport:
    """:class:`~raftka.broker.transactions.marker_sender.MarkerTransport` between brokers."""

    def __init__(
        self,
        channels: BrokerChannels,
        *,
        broker_id: int,
        local: LocalMarkerWriter | None,
        timeout_s: float = WRITE_MARKERS_TIMEOUT_S,
    ) -> None:
        self._channels = channels
        self._broker_id = broker_id
        self._local = local
        self._timeout_s = timeout_s

    async def write_markers(
        self, broker_id: int, request: tpb.WriteTxnMarkersRequest
    ) -> tpb.WriteTxnMarkersResponse:
        if not await FAULTS.admit(FaultPath.MARKERS, broker_id, Direction.OUTBOUND):
            raise NetworkError(
                f"WriteTxnMarkers to broker {broker_id} dropped by fault injection (markers path)"
            )
        if broker_id == self._broker_id and self._local is not None:
            return await self._local.write(request)
        stub = self._channels.transactions(broker_id)
        response: tpb.WriteTxnMarkersResponse = await stub.WriteTxnMarkers(
            request, timeout=self._timeout_s
        )
        return response
