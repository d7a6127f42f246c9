"""Raftka client library and the ``raftka`` command line.

``from raftka.client import AsyncConsumer, Consumer, ConsumerRecord, TopicPartition``. The
names are imported on first use, so ``import raftka.client.cli`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from raftka.client.consumer import (
        AsyncConsumer,
        Consumer,
        ConsumerConfig,
        ConsumerRecord,
    )
    from raftka.client.types import TopicPartition

_LAZY = {
    "AsyncConsumer": "raftka.client.consumer",
    "Consumer": "raftka.client.consumer",
    "ConsumerConfig": "raftka.client.consumer",
    "ConsumerRecord": "raftka.client.consumer",
    "TopicPartition": "raftka.client.types",
}

__all__ = ["AsyncConsumer", "Consumer", "ConsumerConfig", "ConsumerRecord", "TopicPartition"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'raftka.client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
