"""Who may get a producer id (InitProducerId), for every transport: WRITE on the
transactional id for a transactional producer; for an idempotent one IDEMPOTENT_WRITE on the
cluster, or WRITE on some topic (KIP-679)."""

from __future__ import annotations

from raftka.common.security.guard import AccessGuard
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    OP_IDEMPOTENT_WRITE,
    OP_WRITE,
    RESOURCE_CLUSTER,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
)


def require_producer_id_rights(guard: AccessGuard, transactional_id: str) -> None:
    """Raises the authorization error unless the caller may get a producer id."""
    if transactional_id:
        guard.require(OP_WRITE, RESOURCE_TRANSACTIONAL_ID, transactional_id)
        return
    if not (
        guard.allowed_quietly(OP_IDEMPOTENT_WRITE, RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME)
        or guard.allowed_any(OP_WRITE, RESOURCE_TOPIC)
    ):
        guard.require_cluster(OP_IDEMPOTENT_WRITE)
