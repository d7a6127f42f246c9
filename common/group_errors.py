"""Errors of the group coordinator (consumer groups and committed offsets).

The broker's coordinator raises them (or reports their codes per item); the client maps a
failed call or a per-item code back to the same class. ``retriable`` tells the client whether
to find the coordinator again and retry.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class NotCoordinatorError(RaftkaError):
    """This broker does not coordinate the group: find the coordinator again and retry."""

    code = ErrorCode.NOT_COORDINATOR
    retriable = True


class CoordinatorNotAvailableError(RaftkaError):
    """__consumer_offsets is being created, or the group's partition has no leader now."""

    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    retriable = True


class InvalidGroupIdError(RaftkaError):
    """The group id is empty or longer than 249 bytes."""

    code = ErrorCode.INVALID_GROUP_ID


class UnknownMemberIdError(RaftkaError):
    """Not a member of the group (expired, left, or never joined): rejoin with epoch 0."""

    code = ErrorCode.UNKNOWN_MEMBER_ID


class FencedMemberEpochError(RaftkaError):
    """The member's epoch is not accepted: drop every partition and rejoin with epoch 0."""

    code = ErrorCode.FENCED_MEMBER_EPOCH


class StaleMemberEpochError(RaftkaError):
    """An offset commit or fetch with an epoch other than the member's current one."""

    code = ErrorCode.STALE_MEMBER_EPOCH


class UnreleasedInstanceIdError(RaftkaError):
    """The static instance id is still held by a live member."""

    code = ErrorCode.UNRELEASED_INSTANCE_ID


class FencedInstanceIdError(RaftkaError):
    """Another member now holds this static instance id."""

    code = ErrorCode.FENCED_INSTANCE_ID


class UnsupportedAssignorError(RaftkaError):
    """The requested server assignor is not one the coordinator has (uniform, range)."""

    code = ErrorCode.UNSUPPORTED_ASSIGNOR


class InvalidRegularExpressionError(RaftkaError):
    """The subscription's regular expression does not compile."""

    code = ErrorCode.INVALID_REGULAR_EXPRESSION


class GroupMaxSizeReachedError(RaftkaError):
    """The group has as many members as it may have."""

    code = ErrorCode.GROUP_MAX_SIZE_REACHED


class GroupIdNotFoundError(RaftkaError):
    """No such group."""

    code = ErrorCode.GROUP_ID_NOT_FOUND


class NonEmptyGroupError(RaftkaError):
    """The group still has members (delete and offset reset need an empty group)."""

    code = ErrorCode.NON_EMPTY_GROUP


class GroupSubscribedToTopicError(RaftkaError):
    """A member subscribes to the topic whose offsets were to be deleted."""

    code = ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC


class OffsetMetadataTooLargeError(RaftkaError):
    """A committed offset's metadata is longer than the limit (4096 bytes)."""

    code = ErrorCode.OFFSET_METADATA_TOO_LARGE
