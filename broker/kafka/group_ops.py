"""The group operations the Kafka group handlers share: the same
:class:`~raftka.broker.groups.operations.GroupOperations` the gRPC GroupService calls, over the
backend's group coordinator, and Kafka's codes for a group-level refusal."""

from __future__ import annotations

from kio.schema.errors import ErrorCode

from raftka.broker.groups.operations import GroupOperations
from raftka.broker.kafka.backend import KafkaBackend
from raftka.broker.kafka.schema import error_code
from raftka.common.group_errors import CoordinatorNotAvailableError

OLD_MEMBER_ERRORS = {
    ErrorCode.stale_member_epoch: ErrorCode.illegal_generation,
    ErrorCode.group_id_not_found: ErrorCode.illegal_generation,
}
"""Codes a KIP-848 coordinator answers that clients of older versions (OffsetCommit < v9,
OffsetFetch < v9) do not know: Kafka answers ILLEGAL_GENERATION to them instead."""


def group_operations(backend: KafkaBackend) -> GroupOperations:
    """The group operations of this broker; COORDINATOR_NOT_AVAILABLE when it runs no group
    coordinator."""
    if backend.groups is None or backend.offsets_topic is None:
        raise CoordinatorNotAvailableError(
            "this broker runs no group coordinator: find the coordinator again"
        )
    return GroupOperations(
        coordinator=backend.groups, offsets_topic=backend.offsets_topic, guard=backend.guard
    )


def member_error(code: int, version: int, first_new_version: int) -> ErrorCode:
    """Kafka's code for a Raftka one, as a client of ``version`` knows it."""
    mapped = error_code(code)
    if version < first_new_version:
        return OLD_MEMBER_ERRORS.get(mapped, mapped)
    return mapped
