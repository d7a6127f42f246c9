"""The consumer protocol's byte blobs inside JoinGroup and SyncGroup: the member's
ConsumerProtocolSubscription (v0-v3) and the ConsumerProtocolAssignment it gets back.

Each is a 2-byte version, then the body of that version (kio's types, generated from Kafka's
schemas). A version newer than kio knows is read with the newest known one: newer versions only
append fields, which the reader leaves unread."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from kio.schema.consumer_protocol_assignment.v0.data import (
    ConsumerProtocolAssignment,
)
from kio.schema.consumer_protocol_assignment.v0.data import (
    TopicPartition as AssignedTopicPartition,
)
from kio.schema.consumer_protocol_subscription.v0.data import (
    ConsumerProtocolSubscription as SubscriptionV0,
)
from kio.schema.consumer_protocol_subscription.v1.data import (
    ConsumerProtocolSubscription as SubscriptionV1,
)
from kio.schema.consumer_protocol_subscription.v2.data import (
    ConsumerProtocolSubscription as SubscriptionV2,
)
from kio.schema.consumer_protocol_subscription.v3.data import (
    ConsumerProtocolSubscription as SubscriptionV3,
)
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from raftka.broker.groups.state import TopicPartitions

_VERSION = struct.Struct(">h")
_SUBSCRIPTIONS: tuple[type[Any], ...] = (
    SubscriptionV0,
    SubscriptionV1,
    SubscriptionV2,
    SubscriptionV3,
)
ASSIGNMENT_VERSION = 0
"""Every version of ConsumerProtocolAssignment has the same fields; v0 is read by all clients."""


class SubscriptionError(ValueError):
    """A ConsumerProtocolSubscription that does not parse."""


@dataclass(frozen=True, slots=True)
class Subscription:
    version: int
    topics: tuple[str, ...]
    owned: TopicPartitions | None
    """None for v0, which has no owned partitions."""
    rack_id: str | None


def decode_subscription(data: bytes) -> Subscription:
    if len(data) < _VERSION.size:
        raise SubscriptionError(f"{len(data)} bytes: too short for a version")
    (version,) = _VERSION.unpack_from(data)
    if version < 0:
        raise SubscriptionError(f"version {version} is negative")
    schema = _SUBSCRIPTIONS[min(version, len(_SUBSCRIPTIONS) - 1)]
    try:
        entity, _size = entity_reader(schema)(data, _VERSION.size)
    except Exception as e:  # kio raises several kinds for bytes that do not parse
        raise SubscriptionError(f"v{version} does not parse: {e!r}") from None
    owned_items = getattr(entity, "owned_partitions", None)
    owned: dict[str, frozenset[int]] | None = None
    if owned_items is not None:
        owned = {}
        for item in owned_items:
            if item.partitions:
                owned[item.topic] = owned.get(item.topic, frozenset()) | frozenset(
                    int(p) for p in item.partitions
                )
    return Subscription(
        version=version,
        topics=tuple(entity.topics),
        owned=owned,
        rack_id=getattr(entity, "rack_id", None),
    )


def encode_assignment(assignment: TopicPartitions) -> bytes:
    entity = ConsumerProtocolAssignment(
        assigned_partitions=tuple(
            AssignedTopicPartition(topic=topic, partitions=tuple(i32(p) for p in sorted(ps)))  # type: ignore[arg-type]
            for topic, ps in sorted(assignment.items())
            if ps
        ),
        user_data=None,
    )
    buffer = io.BytesIO()
    buffer.write(_VERSION.pack(ASSIGNMENT_VERSION))
    entity_writer(ConsumerProtocolAssignment)(buffer, entity)
    return buffer.getvalue()
