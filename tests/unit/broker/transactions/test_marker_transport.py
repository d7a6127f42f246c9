"""The MARKERS fault path in the coordinator's marker transport: a matching drop rule fails the
call before anything is written (the sender retries it), for local and remote leaders alike."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from raftka.broker.transactions.marker_transport import BrokerChannels, GrpcMarkerTransport
from raftka.common.errors import NetworkError
from raftka.common.faults import FAULTS, Action, Direction, FaultPath, FaultRule, FaultSettings
from raftka.common.ids import BrokerEpoch, BrokerId
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.model import BrokerEndpoint, BrokerRegistration
from raftka.common.metadata.records import register_broker_record
from raftka.v1 import transactions_pb2 as tpb

SELF = 4


class RecordingWriter:
    def __init__(self) -> None:
        self.requests: list[tpb.WriteTxnMarkersRequest] = []

    async def write(self, request: tpb.WriteTxnMarkersRequest) -> tpb.WriteTxnMarkersResponse:
        self.requests.append(request)
        return tpb.WriteTxnMarkersResponse()


@pytest.fixture
def faults() -> Iterator[None]:
    FAULTS.configure(FaultSettings(enabled=True, seed=1), node_id=SELF)
    try:
        yield
    finally:
        FAULTS.configure(FaultSettings(), node_id=-1)


def transport(writer: RecordingWriter) -> GrpcMarkerTransport:
    return GrpcMarkerTransport(BrokerChannels(MetadataImage), broker_id=SELF, local=writer)


def drop_markers(*peers: int, direction: Direction = Direction.BOTH) -> FaultRule:
    return FaultRule(
        Action.DROP,
        paths=frozenset({FaultPath.MARKERS}),
        peers=frozenset(peers),
        direction=direction,
    )


def test_a_markers_drop_rule_fails_the_call_before_writing(faults: None) -> None:
    writer = RecordingWriter()
    FAULTS.add([drop_markers(SELF)])
    with pytest.raises(NetworkError, match="fault injection"):
        asyncio.run(transport(writer).write_markers(SELF, tpb.WriteTxnMarkersRequest()))
    assert writer.requests == []


def test_rules_for_other_peers_paths_or_inbound_let_markers_through(faults: None) -> None:
    writer = RecordingWriter()
    FAULTS.add(
        [
            drop_markers(SELF + 1),
            drop_markers(SELF, direction=Direction.INBOUND),
            FaultRule(Action.DROP, paths=frozenset({FaultPath.REPLICATION})),
        ]
    )
    asyncio.run(transport(writer).write_markers(SELF, tpb.WriteTxnMarkersRequest()))
    assert len(writer.requests) == 1


def test_brokers_call_each_other_on_internal_listeners_when_registered() -> None:
    """Markers and transactional-write checks are broker-to-broker traffic: they go to the
    INTERNAL listener of a broker that has one, else to its CLIENT listener (as clients do)."""
    image = MetadataImage()
    for broker_id, endpoints in (
        (5, (BrokerEndpoint("CLIENT", "h5", 9092), BrokerEndpoint("INTERNAL", "i5", 9093))),
        (6, (BrokerEndpoint("CLIENT", "h6", 9092),)),
    ):
        reg = BrokerRegistration(BrokerId(broker_id), BrokerEpoch(1), "inc", endpoints)
        image.apply(register_broker_record(reg), 1)
    channels = BrokerChannels(lambda: image)
    assert channels.address(5) == "i5:9093"
    assert channels.address(6) == "h6:9092"
    found = image.broker(5)
    assert found is not None and found.client_endpoint() == BrokerEndpoint("CLIENT", "h5", 9092)
    with pytest.raises(NetworkError, match="broker 7 has no listener"):
        channels.address(7)
