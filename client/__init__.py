"""Raftka client library and the ``raftka`` command line.

``from raftka.client import AsyncProducer, Producer, AsyncConsumer, Consumer, Admin``. The
names are imported on first use, so ``import raftka.client.cli.app`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raftka.client.admin import Admin, AsyncAdmin
    from raftka.client.consumer import (
        AsyncConsumer,
        Consumer,
        ConsumerConfig,
        ConsumerRecord,
    )
    from raftka.client.producer import (
        AsyncProducer,
        DeliveryGroup,
        Producer,
        ProducerConfig,
        RecordDelivery,
    )
    from raftka.client.types import OffsetAndMetadata, RecordMetadata, TopicPartition

_LAZY = {
    "AsyncConsumer": "raftka.client.consumer",
    "Consumer": "raftka.client.consumer",
    "ConsumerConfig": "raftka.client.consumer",
    "ConsumerRecord": "raftka.client.consumer",
    "TopicPartition": "raftka.client.types",
    "RecordMetadata": "raftka.client.types",
    "OffsetAndMetadata": "raftka.client.types",
    "AsyncProducer": "raftka.client.producer",
    "Producer": "raftka.client.producer",
    "ProducerConfig": "raftka.client.producer",
    "RecordDelivery": "raftka.client.producer",
    "DeliveryGroup": "raftka.client.producer",
    "AsyncAdmin": "raftka.client.admin",
    "Admin": "raftka.client.admin",
}

__all__ = [
    "Admin",
    "AsyncAdmin",
    "AsyncConsumer",
    "AsyncProducer",
    "Consumer",
    "ConsumerConfig",
    "ConsumerRecord",
    "DeliveryGroup",
    "OffsetAndMetadata",
    "Producer",
    "ProducerConfig",
    "RecordDelivery",
    "RecordMetadata",
    "TopicPartition",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftka.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
