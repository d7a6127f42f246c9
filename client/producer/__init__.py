"""The producer: ``AsyncProducer`` (asyncio) and ``Producer`` (blocking), both idempotent by
default. Split as in Kafka's client: the API (producer.py) puts records into per-partition
batches (accumulator.py, batch.py, buffer_pool.py), and one sender task (sender.py) drains
ready batches to partition leaders, retrying in order (sequences.py). A transactional
producer's state and coordinator calls are in transactions.py, its errors in errors.py."""

from raftka.client.producer.config import ProducerConfig
from raftka.client.producer.delivery import DeliveryGroup, RecordDelivery
from raftka.client.producer.errors import (
    AbortableTransactionError,
    ProducerFatalError,
    ProducerFencedError,
)
from raftka.client.producer.producer import AsyncProducer
from raftka.client.producer.sender import DeliveryTimeoutError
from raftka.client.producer.sync import Producer

__all__ = [
    "AbortableTransactionError",
    "AsyncProducer",
    "DeliveryGroup",
    "DeliveryTimeoutError",
    "Producer",
    "ProducerConfig",
    "ProducerFatalError",
    "ProducerFencedError",
    "RecordDelivery",
]
