"""The workload's sender on the client library's producer: idempotent with acks=all, so the
producer's own retries (after a lost answer, a leader change, NOT_ENOUGH_REPLICAS) are part of
what the experiment tests: the checker's duplicate and order rules catch any retry that wrote
a record twice or out of order.

How a send ended, for the history:

- OK: the producer's future completed, with the offset;
- FAIL: the producer refused the record before sending it (no buffer memory, closed,
  too large, an unknown partition);
- INFO: any other failure. The producer retries until delivery_timeout_ms, and an earlier
  attempt may have been written, so nothing else is certain.
"""

from __future__ import annotations

from raftka.client.producer import AsyncProducer
from raftka.client.producer.buffer_pool import BufferExhaustedError
from raftka.client.producer.producer import ProducerClosedError
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.records.errors import RecordTooLargeError
from raftka.ops.experiments.history import Outcome
from raftka.ops.experiments.workload import SendResult

REFUSED_BEFORE_SENDING = (
    BufferExhaustedError,
    ProducerClosedError,
    RecordTooLargeError,
    InvalidRequestError,
)


class ProducerSender:
    def __init__(
        self, bootstrap: list[str], topic: str, *, acks: int, request_timeout_s: float
    ) -> None:
        request_timeout_ms = int(request_timeout_s * 1000)
        self._topic = topic
        self.producer = AsyncProducer(
            bootstrap_servers=bootstrap,
            acks="all" if acks == -1 else str(acks),
            linger_ms=2,
            request_timeout_ms=request_timeout_ms,
            delivery_timeout_ms=max(4 * request_timeout_ms, 10_000),
            max_block_ms=request_timeout_ms,
            retry_backoff_max_ms=500,
        )

    async def send(self, partition: int, value: bytes) -> SendResult:
        try:
            delivery = await self.producer.send(self._topic, value, partition=partition)
        except REFUSED_BEFORE_SENDING as e:
            return SendResult(Outcome.FAIL, error=type(e).__name__)
        except RaftkaError as e:  # e.g. no metadata for the topic within max_block_ms
            return SendResult(Outcome.FAIL, error=e.code_name)
        try:
            metadata = await delivery
        except ProducerClosedError as e:
            return SendResult(Outcome.INFO, error=type(e).__name__)
        except RaftkaError as e:
            return SendResult(Outcome.INFO, error=e.code_name)
        return SendResult(Outcome.OK, offset=metadata.offset)

    async def close(self) -> None:
        await self.producer.close(timeout_s=5.0)
