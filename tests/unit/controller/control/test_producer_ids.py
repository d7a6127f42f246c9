"""Producer-id blocks (KIP-730)."""

from __future__ import annotations

import pytest

from raftka.common.errors import BrokerIdNotRegisteredError, StaleBrokerEpochError
from raftka.common.metadata.image import MetadataImage
from raftka.controller.control.producer_ids import PRODUCER_ID_BLOCK_SIZE, allocate_producer_ids
from raftka.v1.controller_pb2 import AllocateProducerIdsRequest

from .harness import Harness


def _allocate(h: Harness, broker_id: int) -> tuple[int, int]:
    reg = h.image.broker(broker_id)
    assert reg is not None
    result = allocate_producer_ids(
        h.image, AllocateProducerIdsRequest(broker_id=broker_id, broker_epoch=reg.epoch)
    )
    (record,) = result.records
    assert record.producer_ids.broker_id == broker_id
    assert record.producer_ids.next_producer_id == result.response.first_producer_id + 1000
    response = h.commit(result)
    return response.first_producer_id, response.count


def test_blocks_are_contiguous_and_never_overlap_across_brokers() -> None:
    h = Harness()
    h.add_brokers([1, 2, 3])
    blocks = [_allocate(h, broker_id) for broker_id in [1, 2, 3, 1, 3, 3, 2]]
    assert PRODUCER_ID_BLOCK_SIZE == 1000
    assert all(count == 1000 for _, count in blocks)
    assert [first for first, _ in blocks] == [i * 1000 for i in range(len(blocks))]
    ids = [pid for first, count in blocks for pid in range(first, first + count)]
    assert len(ids) == len(set(ids))
    assert h.image.next_producer_id == 7000


def test_blocks_survive_a_snapshot() -> None:
    h = Harness()
    h.add_brokers([1])
    _allocate(h, 1)
    h.image = MetadataImage.from_records(h.image.to_snapshot_records(), h.image.last_applied_index)
    assert _allocate(h, 1)[0] == 1000


def test_stale_or_unknown_broker_gets_nothing() -> None:
    h = Harness()
    h.add_brokers([1])
    reg = h.image.broker(1)
    assert reg is not None
    with pytest.raises(StaleBrokerEpochError):
        allocate_producer_ids(
            h.image, AllocateProducerIdsRequest(broker_id=1, broker_epoch=reg.epoch - 1)
        )
    with pytest.raises(BrokerIdNotRegisteredError):
        allocate_producer_ids(h.image, AllocateProducerIdsRequest(broker_id=9, broker_epoch=1))
    assert h.image.next_producer_id == 0
