"""Checking ACLs sent for creation, and selecting ACLs with a filter (Kafka's AclBindingFilter).

A filter field that is empty (strings) or ANY / unset (enums) matches everything. The resource
name matches by the filter's pattern type, as Kafka's ResourcePatternFilter does:

- ANY: the ACL's name equals the filter's (any pattern type);
- LITERAL / PREFIXED: the ACL has that pattern type and the same name;
- MATCH: every ACL that would apply to a resource of that literal name: LITERAL with the name,
  LITERAL ``*``, and PREFIXED with a prefix of the name.

Principal and host match exactly (``User:*`` in a filter selects only ACLs for ``User:*``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from raftka.common.errors import InvalidRequestError
from raftka.common.security.model import (
    CLUSTER_RESOURCE_NAME,
    LITERAL,
    PREFIXED,
    RESOURCE_CLUSTER,
    USER_TYPE,
    WILDCARD_HOST,
    WILDCARD_RESOURCE,
    Acl,
)
from raftka.v1.common_pb2 import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPatternType,
    AclPermissionType,
    AclResourceType,
)

RESOURCE_ANY = AclResourceType.ACL_RESOURCE_TYPE_ANY
PATTERN_ANY = AclPatternType.ACL_PATTERN_TYPE_ANY
PATTERN_MATCH = AclPatternType.ACL_PATTERN_TYPE_MATCH
OP_ANY = AclOperation.ACL_OPERATION_ANY
PERMISSION_ANY = AclPermissionType.ACL_PERMISSION_TYPE_ANY

MAX_NAME_LENGTH = 1000
"""Longest resource name or principal accepted in an ACL (topic names stop at 249)."""

_CONCRETE_RESOURCE_TYPES = frozenset(AclResourceType.values()) - {0, RESOURCE_ANY}
_CONCRETE_OPERATIONS = frozenset(AclOperation.values()) - {0, OP_ANY}
_CONCRETE_PERMISSIONS = frozenset(AclPermissionType.values()) - {0, PERMISSION_ANY}


ProtoEnum = Any
"""A generated protobuf enum (its stubs type it as a class with a metaclass, so: Any)."""

_PREFIXES = {
    "AclResourceType": "ACL_RESOURCE_TYPE_",
    "AclPatternType": "ACL_PATTERN_TYPE_",
    "AclOperation": "ACL_OPERATION_",
    "AclPermissionType": "ACL_PERMISSION_TYPE_",
}


def _enum_name(enum: ProtoEnum, value: int) -> str:
    """Kafka's spelling of an ACL enum value: WRITE, TOPIC, PREFIXED, ALLOW, CLUSTER_ACTION
    (the number when this node does not know it)."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(_PREFIXES.get(enum.DESCRIPTOR.name, ""))


def resource_type_name(value: int) -> str:
    return _enum_name(AclResourceType, value)


def pattern_type_name(value: int) -> str:
    return _enum_name(AclPatternType, value)


def operation_name(value: int) -> str:
    return _enum_name(AclOperation, value)


def permission_name(value: int) -> str:
    return _enum_name(AclPermissionType, value)


def parse_enum(enum: ProtoEnum, text: str) -> int:
    """The value Kafka's name (any case, "-" or "_" or none between words) stands for:
    "write", "cluster-action", "ClusterAction", "PREFIXED"."""
    wanted = text.replace("-", "").replace("_", "").lower()
    for name, value in enum.items():
        short = name.removeprefix(_PREFIXES.get(enum.DESCRIPTOR.name, ""))
        if short.replace("_", "").lower() == wanted and short != "UNKNOWN":
            return int(value)
    choices = ", ".join(
        _enum_name(enum, v).lower() for v in enum.values() if _enum_name(enum, v) != "UNKNOWN"
    )
    raise InvalidRequestError(f"{text!r} is not one of: {choices}")


def _check_enum(field: str, value: int, allowed: frozenset[int], enum: ProtoEnum) -> None:
    if value not in allowed:
        choices = ", ".join(_enum_name(enum, v) for v in sorted(allowed))
        raise InvalidRequestError(
            f"{field} is {_enum_name(enum, value)}; an ACL needs one of {choices}"
        )


def validate_principal(principal: str, field: str = "principal") -> None:
    kind, sep, name = principal.partition(":")
    if not sep or kind != USER_TYPE or not name:
        raise InvalidRequestError(
            f"{field} {principal!r} must look like 'User:<name>' (or 'User:*' for everyone)"
        )
    if len(principal) > MAX_NAME_LENGTH or not principal.isprintable():
        raise InvalidRequestError(
            f"{field} must be printable and at most {MAX_NAME_LENGTH} characters"
        )


def validate_host(host: str, field: str = "host") -> None:
    if host == WILDCARD_HOST:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise InvalidRequestError(
            f"{field} {host!r} must be '*' (any host) or an IP address (not a host name)"
        ) from None


def validate_acl(binding: AclBinding) -> Acl:
    """The ACL to store, or InvalidRequestError naming the first field that is missing or a
    filter-only value."""
    _check_enum("resource_type", binding.resource_type, _CONCRETE_RESOURCE_TYPES, AclResourceType)
    _check_enum(
        "pattern_type", binding.pattern_type, frozenset({LITERAL, PREFIXED}), AclPatternType
    )
    _check_enum("operation", binding.operation, _CONCRETE_OPERATIONS, AclOperation)
    _check_enum(
        "permission_type", binding.permission_type, _CONCRETE_PERMISSIONS, AclPermissionType
    )
    name = binding.resource_name
    if not name:
        raise InvalidRequestError("resource_name is empty: name the resource (or '*' for all)")
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidRequestError(
            f"resource_name must be printable and at most {MAX_NAME_LENGTH} characters"
        )
    if binding.resource_type == RESOURCE_CLUSTER and (
        name != CLUSTER_RESOURCE_NAME or binding.pattern_type != LITERAL
    ):
        raise InvalidRequestError(
            f"a CLUSTER ACL's resource_name must be the LITERAL {CLUSTER_RESOURCE_NAME!r}, "
            f"not {name!r}"
        )
    if binding.pattern_type == PREFIXED and name == WILDCARD_RESOURCE:
        raise InvalidRequestError(
            "a PREFIXED ACL on '*' would only match names starting with '*': use LITERAL '*' "
            "for every resource"
        )
    validate_principal(binding.principal)
    validate_host(binding.host)
    return Acl.from_proto(binding)


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Selects ACLs; a field left as None or ANY matches everything."""

    resource_type: int = RESOURCE_ANY
    resource_name: str | None = None
    pattern_type: int = PATTERN_ANY
    """ANY, MATCH, LITERAL or PREFIXED."""
    principal: str | None = None
    host: str | None = None
    operation: int = OP_ANY
    permission: int = PERMISSION_ANY

    @classmethod
    def from_proto(cls, f: AclBindingFilter) -> AclFilter:
        """Unset enums (0) mean ANY and empty strings mean any value, so the default message
        selects every ACL. Raises InvalidRequestError for an enum value this node does not
        know."""
        for field, value, enum in (
            ("resource_type", f.resource_type, AclResourceType),
            ("pattern_type", f.pattern_type, AclPatternType),
            ("operation", f.operation, AclOperation),
            ("permission_type", f.permission_type, AclPermissionType),
        ):
            if value not in enum.values():
                raise InvalidRequestError(f"filter {field} {value} is not a known value")
        return cls(
            resource_type=f.resource_type or RESOURCE_ANY,
            resource_name=f.resource_name or None,
            pattern_type=f.pattern_type or PATTERN_ANY,
            principal=f.principal or None,
            host=f.host or None,
            operation=f.operation or OP_ANY,
            permission=f.permission_type or PERMISSION_ANY,
        )

    def to_proto(self) -> AclBindingFilter:
        return AclBindingFilter(
            resource_type=self.resource_type,  # type: ignore[arg-type]
            resource_name=self.resource_name or "",
            pattern_type=self.pattern_type,  # type: ignore[arg-type]
            principal=self.principal or "",
            host=self.host or "",
            operation=self.operation,  # type: ignore[arg-type]
            permission_type=self.permission,  # type: ignore[arg-type]
        )

    def matches(self, acl: Acl) -> bool:
        if self.resource_type != RESOURCE_ANY and self.resource_type != acl.resource_type:
            return False
        if self.pattern_type not in (PATTERN_ANY, PATTERN_MATCH, acl.pattern_type):
            return False
        if not self._name_matches(acl):
            return False
        if self.principal is not None and self.principal != acl.principal:
            return False
        if self.host is not None and self.host != acl.host:
            return False
        if self.operation != OP_ANY and self.operation != acl.operation:
            return False
        return self.permission in (PERMISSION_ANY, acl.permission)

    def _name_matches(self, acl: Acl) -> bool:
        name = self.resource_name
        if name is None:
            return True
        if self.pattern_type != PATTERN_MATCH:
            return name == acl.resource_name
        if acl.pattern_type == LITERAL:
            return acl.resource_name in (name, WILDCARD_RESOURCE)
        return name.startswith(acl.resource_name)


MATCH_ALL = AclFilter()
"""The filter that selects every ACL."""


def acl_sort_key(acl: Acl) -> tuple[int, str, int, str, str, int, int]:
    """The order DescribeAcls lists ACLs in: resource type, name, pattern, principal, host,
    operation, permission."""
    return (
        acl.resource_type,
        acl.resource_name,
        acl.pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission,
    )
