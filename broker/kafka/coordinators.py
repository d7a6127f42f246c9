"""FindCoordinator (v0-v5): which broker coordinates a group (key type 0) or a transactional
id (key type 1), named by its Kafka listener as Metadata names brokers.

The lookup is the gRPC FindCoordinator's (:mod:`raftka.broker.groups.coordinator_lookup`):
the leader of the key's ``__consumer_offsets`` / ``__transaction_state`` partition, the
internal topic created on first use (COORDINATOR_NOT_AVAILABLE until it exists), DESCRIBE on
the key checked. v0-v3 carry one key, v4+ a batch (``coordinator_keys``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kio.schema.errors import ErrorCode

from raftka.broker.groups.coordinator_lookup import (
    Endpoint,
    Located,
    coordinator_kind,
    locate,
)
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.dispatch import RequestContext
from raftka.broker.kafka.schema import NO_THROTTLE, build, error_of, nested, response_type
from raftka.common.errors import RaftkaError
from raftka.common.limits import require_items
from raftka.common.metadata.model import KAFKA_LISTENER

FIND_COORDINATOR_KEY = 10
BATCHED_VERSION = 4
"""From this version a request carries ``coordinator_keys`` and the answer a list."""


class FindCoordinatorHandler:
    def __init__(self, backend: KafkaBackend) -> None:
        self._backend = backend

    async def __call__(self, request: Any, context: RequestContext) -> Any:
        answer_type = response_type(FIND_COORDINATOR_KEY, context.api_version)
        batched = context.api_version >= BATCHED_VERSION
        keys: Sequence[str] = request.coordinator_keys if batched else (request.key,)
        found = self.find(int(getattr(request, "key_type", 0)), keys)
        if not batched:
            return build(answer_type, throttle_time=NO_THROTTLE, **_fields(found[0]))
        entry = nested(answer_type, "Coordinator")
        return build(
            answer_type,
            throttle_time=NO_THROTTLE,
            coordinators=tuple(build(entry, key=f.key, **_fields(f)) for f in found),
        )

    def find(self, key_type: int, keys: Sequence[str]) -> list[Located]:
        """Each key's coordinator; a request-wide refusal (a key type not served, too many
        keys, no coordinator on this broker) is repeated on every key."""
        backend = self._backend
        try:
            require_items(len(keys), "coordinator_keys", empty_means_all=True)
            kind = coordinator_kind(key_type, backend.offsets_topic, backend.transaction_topic)
        except RaftkaError as e:
            return [Located(key, error=e) for key in keys]
        return locate(keys, kind, backend.guard, self._kafka_endpoint)

    def _kafka_endpoint(self, broker_id: int) -> Endpoint | None:
        reg = self._backend.image().broker(broker_id)
        endpoint = None if reg is None or reg.fenced else reg.endpoint(KAFKA_LISTENER)
        return None if endpoint is None else (endpoint.host, endpoint.port)


def _fields(found: Located) -> dict[str, Any]:
    if found.error is not None or found.endpoint is None:
        error = found.error
        return {
            "error_code": ErrorCode.coordinator_not_available if error is None else error_of(error),
            "error_message": None if error is None else error.message,
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    host, port = found.endpoint
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "node_id": found.node_id,
        "host": host,
        "port": port,
    }
