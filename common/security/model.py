"""The values security works with: principals, ACLs, stored credentials and quota entities.

Plain frozen values, built from and turned back into the wire records (``raftka.v1``), so the
metadata image, the authorizer and the admin RPCs share one vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.v1.common_pb2 import (
    AclBinding,
    AclOperation,
    AclPatternType,
    AclPermissionType,
    AclResourceType,
    ClientQuotaEntity,
    ClientQuotaEntityComponent,
    ScramMechanism,
)

USER_TYPE = "User"
ANONYMOUS = "User:ANONYMOUS"
"""The principal of a caller that presented neither a client certificate nor a token."""
WILDCARD_PRINCIPAL = "User:*"
WILDCARD_HOST = "*"
WILDCARD_RESOURCE = "*"
CLUSTER_RESOURCE_NAME = "kafka-cluster"
"""The name of the one cluster resource, as Kafka spells it."""

# Aliases so callers read ``Op.WRITE``-like constants without the proto prefixes.
RESOURCE_TOPIC = AclResourceType.ACL_RESOURCE_TYPE_TOPIC
RESOURCE_GROUP = AclResourceType.ACL_RESOURCE_TYPE_GROUP
RESOURCE_CLUSTER = AclResourceType.ACL_RESOURCE_TYPE_CLUSTER
RESOURCE_TRANSACTIONAL_ID = AclResourceType.ACL_RESOURCE_TYPE_TRANSACTIONAL_ID
RESOURCE_USER = AclResourceType.ACL_RESOURCE_TYPE_USER
LITERAL = AclPatternType.ACL_PATTERN_TYPE_LITERAL
PREFIXED = AclPatternType.ACL_PATTERN_TYPE_PREFIXED
ALLOW = AclPermissionType.ACL_PERMISSION_TYPE_ALLOW
DENY = AclPermissionType.ACL_PERMISSION_TYPE_DENY
OP_ALL = AclOperation.ACL_OPERATION_ALL
OP_READ = AclOperation.ACL_OPERATION_READ
OP_WRITE = AclOperation.ACL_OPERATION_WRITE
OP_CREATE = AclOperation.ACL_OPERATION_CREATE
OP_DELETE = AclOperation.ACL_OPERATION_DELETE
OP_ALTER = AclOperation.ACL_OPERATION_ALTER
OP_DESCRIBE = AclOperation.ACL_OPERATION_DESCRIBE
OP_CLUSTER_ACTION = AclOperation.ACL_OPERATION_CLUSTER_ACTION
OP_DESCRIBE_CONFIGS = AclOperation.ACL_OPERATION_DESCRIBE_CONFIGS
OP_ALTER_CONFIGS = AclOperation.ACL_OPERATION_ALTER_CONFIGS
OP_IDEMPOTENT_WRITE = AclOperation.ACL_OPERATION_IDEMPOTENT_WRITE


def user_principal(name: str) -> str:
    """``User:<name>``."""
    return f"{USER_TYPE}:{name}"


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL (an AclBinding with concrete values: no ANY or MATCH)."""

    resource_type: int
    resource_name: str
    pattern_type: int
    principal: str
    host: str
    operation: int
    permission: int

    @classmethod
    def from_proto(cls, b: AclBinding) -> Acl:
        return cls(
            resource_type=b.resource_type,
            resource_name=b.resource_name,
            pattern_type=b.pattern_type,
            principal=b.principal,
            host=b.host,
            operation=b.operation,
            permission=b.permission_type,
        )

    def to_proto(self) -> AclBinding:
        return AclBinding(
            resource_type=self.resource_type,  # type: ignore[arg-type]
            resource_name=self.resource_name,
            pattern_type=self.pattern_type,  # type: ignore[arg-type]
            principal=self.principal,
            host=self.host,
            operation=self.operation,  # type: ignore[arg-type]
            permission_type=self.permission,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """A user's stored credential for one mechanism: never the password, only what checks it."""

    name: str
    mechanism: int
    salt: bytes
    stored_key: bytes
    server_key: bytes
    iterations: int

    @property
    def mechanism_name(self) -> str:
        return ScramMechanism.Name(self.mechanism)  # type: ignore[arg-type]


QuotaEntityKey = tuple[tuple[str, str | None], ...]
"""A quota entity as a hashable key: ((entity_type, name or None for the default), ...), sorted
by entity type ("client-id" before "user")."""

QUOTA_USER = "user"
QUOTA_CLIENT_ID = "client-id"
QUOTA_ENTITY_TYPES = (QUOTA_USER, QUOTA_CLIENT_ID)
QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage")


def quota_entity_key(entity: ClientQuotaEntity) -> QuotaEntityKey:
    """The key of a wire entity (no validation: see the quota RPCs for that)."""
    return tuple(
        sorted((c.entity_type, None if c.is_default else c.entity_name) for c in entity.components)
    )


def quota_entity_proto(key: QuotaEntityKey) -> ClientQuotaEntity:
    return ClientQuotaEntity(
        components=[
            ClientQuotaEntityComponent(
                entity_type=kind, entity_name=name or "", is_default=name is None
            )
            for kind, name in key
        ]
    )
