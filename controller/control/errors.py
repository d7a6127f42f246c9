"""Per-partition errors of the partition managers (AlterPartition, elections, reassignments).

They are reported in a partition's result, never as a request's status, so they need no gRPC
mapping; each carries the ErrorCode its result gets.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class UnknownTopicIdError(RaftkaError):
    code = ErrorCode.UNKNOWN_TOPIC_ID
    retriable = True


class ControllerBehindError(RaftkaError):
    """The request names epochs newer than this controller's: it is not (or no longer) the
    controller the sender learnt them from. Reported as NOT_CONTROLLER."""

    code = ErrorCode.NOT_CONTROLLER
    retriable = True


class FencedLeaderEpochError(RaftkaError):
    code = ErrorCode.FENCED_LEADER_EPOCH


class InvalidUpdateVersionError(RaftkaError):
    code = ErrorCode.INVALID_UPDATE_VERSION


class IneligibleReplicaError(RaftkaError):
    code = ErrorCode.INELIGIBLE_REPLICA


class InvalidReplicaAssignmentError(RaftkaError):
    code = ErrorCode.INVALID_REPLICA_ASSIGNMENT


class NoReassignmentInProgressError(RaftkaError):
    code = ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


class ElectionNotNeededError(RaftkaError):
    code = ErrorCode.ELECTION_NOT_NEEDED


class PreferredLeaderNotAvailableError(RaftkaError):
    code = ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    retriable = True


class EligibleLeadersNotAvailableError(RaftkaError):
    code = ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    retriable = True
