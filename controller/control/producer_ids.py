"""Producer-id blocks handed to brokers (KIP-730).

Blocks are taken from the image's ``next_producer_id``, so two allocations never overlap as
long as each one's record is applied (to the working image) before the next is computed.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import producer_ids_record
from raftka.controller.control.cluster import check_broker_epoch
from raftka.controller.control.result import ControllerResult
from raftka.v1.controller_pb2 import AllocateProducerIdsRequest, AllocateProducerIdsResponse

PRODUCER_ID_BLOCK_SIZE = 1000
MAX_PRODUCER_ID = 2**63 - 1


def allocate_producer_ids(
    image: MetadataImage, request: AllocateProducerIdsRequest
) -> ControllerResult[AllocateProducerIdsResponse]:
    """The next block of PRODUCER_ID_BLOCK_SIZE ids for a broker with a current epoch."""
    reg = check_broker_epoch(image, request.broker_id, request.broker_epoch)
    first = image.next_producer_id
    if first + PRODUCER_ID_BLOCK_SIZE - 1 > MAX_PRODUCER_ID:
        raise RaftkaError(f"producer ids are exhausted: the next block would start at {first}")
    record = producer_ids_record(reg.broker_id, reg.epoch, first + PRODUCER_ID_BLOCK_SIZE)
    response = AllocateProducerIdsResponse(first_producer_id=first, count=PRODUCER_ID_BLOCK_SIZE)
    return ControllerResult((record,), response)
