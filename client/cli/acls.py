"""``raftka acls add|list|remove``: manage ACLs (Kafka's kafka-acls.sh, same option names).

    raftka acls add --allow-principal User:alice --operation write --topic orders
    raftka acls add --allow-principal User:bob --operation read --topic orders- \\
        --resource-pattern-type prefixed --group billing
    raftka acls add --deny-principal User:mallory --host 10.0.0.7 --operation all --topic '*'
    raftka acls list [--topic orders] [--principal User:alice]
    raftka acls remove --principal User:alice --topic orders

``add`` creates one ACL per (principal, host, operation, resource). ``list`` and ``remove``
take filters: an option left out matches everything; ``--resource-pattern-type`` defaults to
literal when a resource is named (``match`` lists every ACL that applies to the named
resource: literal, ``*`` and prefixes). ``remove`` prints what it removed and needs at least
one resource or ``--principal``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace

from raftka.client.acl_admin import AclAdmin, DescribedAcl
from raftka.client.cli.admin import with_client
from raftka.client.cli.bootstrap import add_bootstrap_controller_argument
from raftka.client.cli.groups import table
from raftka.common.errors import InvalidRequestError, RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.common.security.acl_filters import (
    OP_ANY,
    PERMISSION_ANY,
    RESOURCE_ANY,
    AclFilter,
    operation_name,
    parse_enum,
    pattern_type_name,
    permission_name,
    resource_type_name,
)
from raftka.common.security.model import (
    ALLOW,
    CLUSTER_RESOURCE_NAME,
    DENY,
    LITERAL,
    RESOURCE_CLUSTER,
    RESOURCE_GROUP,
    RESOURCE_TOPIC,
    RESOURCE_TRANSACTIONAL_ID,
    WILDCARD_HOST,
    Acl,
)
from raftka.v1.common_pb2 import AclOperation, AclPatternType, AclPermissionType


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acls = sub.add_parser("acls", help="add, list and remove ACLs")
    asub = acls.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = asub.add_parser("add", help="create ACLs (one per principal, host, operation, resource)")
    add.add_argument(
        "--allow-principal", action="append", default=[], metavar="User:NAME",
        help="a principal the ACLs allow (User:* for everyone; repeatable)",
    )  # fmt: skip
    add.add_argument(
        "--deny-principal", action="append", default=[], metavar="User:NAME",
        help="a principal the ACLs deny (repeatable); a DENY beats every ALLOW",
    )  # fmt: skip
    add.add_argument(
        "--host", action="append", default=[], metavar="IP",
        help="the client IP address the ACLs apply to (default: * for any; repeatable)",
    )  # fmt: skip
    add.add_argument(
        "--operation", action="append", default=[], required=True,
        help="read, write, create, delete, alter, describe, cluster-action, describe-configs, "
        "alter-configs, idempotent-write or all (repeatable)",
    )  # fmt: skip
    _resource_arguments(add, patterns="literal, prefixed")

    listing = asub.add_parser("list", help="the ACLs matching a filter (all by default)")
    _resource_arguments(listing, patterns="literal, prefixed, any, match")
    _filter_arguments(listing)

    remove = asub.add_parser("remove", help="delete every ACL matching a filter")
    _resource_arguments(remove, patterns="literal, prefixed, any, match")
    _filter_arguments(remove)

    for p in (add, listing, remove):
        add_bootstrap_controller_argument(p)
    acls.set_defaults(run=with_client(_run))


def _resource_arguments(parser: argparse.ArgumentParser, *, patterns: str) -> None:
    parser.add_argument("--topic", action="append", default=[], help="a topic (repeatable)")
    parser.add_argument("--group", action="append", default=[], help="a group (repeatable)")
    parser.add_argument(
        "--transactional-id", action="append", default=[], help="a transactional id (repeatable)"
    )
    parser.add_argument(
        "--cluster", action="store_true", help=f"the cluster ({CLUSTER_RESOURCE_NAME})"
    )
    parser.add_argument(
        "--resource-pattern-type",
        default=None,
        help=f"{patterns} (default: literal); '*' as a literal name means every resource",
    )


def _filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--principal", default=None, help="only ACLs of this principal")
    parser.add_argument("--host", default=None, help="only ACLs for this host")
    parser.add_argument("--operation", default=None, help="only ACLs for this operation")
    parser.add_argument("--permission", default=None, help="only allow or deny ACLs")


def resources(args: argparse.Namespace) -> list[tuple[int, str]]:
    """The (resource type, name) pairs the command names, in option order."""
    named: list[tuple[int, str]] = [(RESOURCE_TOPIC, n) for n in args.topic]
    named += [(RESOURCE_GROUP, n) for n in args.group]
    named += [(RESOURCE_TRANSACTIONAL_ID, n) for n in args.transactional_id]
    if args.cluster:
        named.append((RESOURCE_CLUSTER, CLUSTER_RESOURCE_NAME))
    return named


def acls_to_add(args: argparse.Namespace) -> list[Acl]:
    named = resources(args)
    if not named:
        raise InvalidRequestError(
            "name a resource: --topic, --group, --transactional-id or --cluster"
        )
    principals = [(p, ALLOW) for p in args.allow_principal]
    principals += [(p, DENY) for p in args.deny_principal]
    if not principals:
        raise InvalidRequestError("name a principal: --allow-principal or --deny-principal")
    pattern = parse_enum(AclPatternType, args.resource_pattern_type or "literal")
    operations = [parse_enum(AclOperation, o) for o in args.operation]
    hosts = args.host or [WILDCARD_HOST]
    return [
        Acl(rtype, name, pattern, principal, host, op, permission)
        for rtype, name in named
        for principal, permission in principals
        for host in hosts
        for op in operations
    ]


def filters(args: argparse.Namespace) -> list[AclFilter]:
    """One filter per named resource (a single resource-less filter when none is named)."""
    named = resources(args)
    default_pattern = "literal" if named else "any"
    pattern = parse_enum(AclPatternType, args.resource_pattern_type or default_pattern)
    base = AclFilter(
        resource_type=RESOURCE_ANY,
        pattern_type=pattern,
        principal=args.principal,
        host=args.host,
        operation=parse_enum(AclOperation, args.operation) if args.operation else OP_ANY,
        permission=(
            parse_enum(AclPermissionType, args.permission) if args.permission else PERMISSION_ANY
        ),
    )
    if not named:
        return [base]
    return [replace(base, resource_type=t, resource_name=n) for t, n in named]


def acl_table(described: Sequence[DescribedAcl]) -> str:
    rows: list[tuple[str, ...]] = [
        ("RESOURCE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION", "ID")
    ]
    for d in described:
        a = d.acl
        rows.append(
            (
                resource_type_name(a.resource_type),
                a.resource_name,
                pattern_type_name(a.pattern_type),
                a.principal,
                a.host,
                operation_name(a.operation),
                permission_name(a.permission),
                d.id,
            )
        )
    return table(rows)


async def _run(client: ControllerClient, args: argparse.Namespace) -> int:
    admin = AclAdmin(client)
    if args.action == "add":
        wanted = acls_to_add(args)
        created: list[DescribedAcl] = []
        failed = 0
        for acl, result in zip(wanted, await admin.create(wanted), strict=True):
            if isinstance(result, RaftkaError):
                failed += 1
                print(f"not created: {_describe(acl)}: {result.code_name}: {result.message}")
            else:
                created.append(DescribedAcl(result, acl))
        if created:
            print(acl_table(created))
        return 1 if failed else 0
    if args.action == "list":
        seen: dict[str, DescribedAcl] = {}
        for f in filters(args):
            for d in await admin.describe(f):
                seen.setdefault(d.id, d)
        found = list(seen.values())
        print(acl_table(found) if found else "no ACLs match")
        return 0
    chosen = filters(args)
    if not resources(args) and args.principal is None:
        raise InvalidRequestError(
            "remove needs a resource (--topic, --group, --transactional-id, --cluster) or "
            "--principal, so that it cannot delete every ACL by accident"
        )
    removed: list[DescribedAcl] = []
    status = 0
    for deletion in await admin.delete(chosen):
        if deletion.error is not None:
            status = 1
            print(f"filter refused: {deletion.error.code_name}: {deletion.error.message}")
        removed.extend(deletion.deleted)
    print(f"removed {len(removed)} ACL(s)")
    if removed:
        print(acl_table(removed))
    return status


def _describe(acl: Acl) -> str:
    pattern = "" if acl.pattern_type == LITERAL else f" ({pattern_type_name(acl.pattern_type)})"
    return (
        f"{permission_name(acl.permission)} {acl.principal} {operation_name(acl.operation)} "
        f"on {resource_type_name(acl.resource_type)} {acl.resource_name!r}{pattern} "
        f"from {acl.host}"
    )
