"""Errors of security: authentication, authorization, credentials and ACL administration.

Servers raise them (or report their codes per item); the client maps a failed call back to the
same class. None is retriable: a caller without the right certificate, token or ACL will not
get one by trying again; an operator must grant it.
"""

from __future__ import annotations

from raftka.common.errors import RaftkaError
from raftka.v1.common_pb2 import ErrorCode


class TopicAuthorizationFailedError(RaftkaError):
    """The caller lacks the ACL the topic needs. Like every *AuthorizationFailedError, the
    message names the principal, the operation and the resource."""

    code = ErrorCode.TOPIC_AUTHORIZATION_FAILED


class GroupAuthorizationFailedError(RaftkaError):
    code = ErrorCode.GROUP_AUTHORIZATION_FAILED


class ClusterAuthorizationFailedError(RaftkaError):
    code = ErrorCode.CLUSTER_AUTHORIZATION_FAILED


class TransactionalIdAuthorizationFailedError(RaftkaError):
    code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


class SecurityDisabledError(RaftkaError):
    """An ACL RPC on a cluster whose authorizer is off (security.authorizer_enable)."""

    code = ErrorCode.SECURITY_DISABLED


class AuthenticationFailedError(RaftkaError):
    """No valid client certificate or bearer token where the listener requires one, or a
    token that does not match the user's stored credential."""

    code = ErrorCode.SASL_AUTHENTICATION_FAILED


class UnacceptableCredentialError(RaftkaError):
    """A credential the cluster refuses (iterations, salt or key length, user name)."""

    code = ErrorCode.UNACCEPTABLE_CREDENTIAL


class ResourceNotFoundError(RaftkaError):
    """Deleting a credential (or describing a user) that does not exist."""

    code = ErrorCode.RESOURCE_NOT_FOUND


class DuplicateResourceError(RaftkaError):
    """The same user and mechanism, ACL or quota entity twice in one request."""

    code = ErrorCode.DUPLICATE_RESOURCE


AUTHORIZATION_ERRORS: tuple[type[RaftkaError], ...] = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailedError,
)
"""The *_AUTHORIZATION_FAILED errors, for ``except AUTHORIZATION_ERRORS``."""
