"""``raftka groups``: consumer groups, as Kafka's kafka-consumer-groups shows and changes them.

    raftka groups list
    raftka groups describe billing
    raftka groups reset-offsets billing --topic orders --to-earliest            # dry run
    raftka groups reset-offsets billing --topic orders:0,1 --shift-by -10 --execute
    raftka groups delete billing old-group
    raftka groups delete-offsets billing --topic orders

Talks to the brokers (--bootstrap-server, else $RAFTKA_BOOTSTRAP_SERVER, else the local
cluster of ``raftka up``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from raftka.client.cli.bootstrap import (
    add_bootstrap_server_argument,
    connection_security,
    resolve_bootstrap_servers,
)
from raftka.client.types import TopicPartition
from raftka.common.errors import InvalidRequestError, RaftkaError

if TYPE_CHECKING:
    from raftka.client.admin import AsyncAdmin
    from raftka.client.group_admin import GroupDescription, ResetSpec


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    groups = sub.add_parser(
        "groups",
        help="list, describe, reset and delete consumer groups",
        description="Consumer groups: their members, assignments, committed offsets and lag "
        "(like kafka-consumer-groups).",
    )
    gsub = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = gsub.add_parser("list", help="every group, with its type and state")
    listing.add_argument(
        "--state", action="append", default=[], help="only groups in this state (repeatable)"
    )
    describe = gsub.add_parser(
        "describe", help="members, assignments, committed offsets, end offsets and lag"
    )
    describe.add_argument("group", nargs="+")
    reset = gsub.add_parser(
        "reset-offsets",
        help="move an empty group's committed offsets (a dry run unless --execute)",
        description="Compute new committed offsets for the group's partitions of the given "
        "topics and print them; with --execute, commit them. Only for a group with no active "
        "members (stop its consumers first). Targets are clamped to each partition's log.",
    )
    reset.add_argument("group")
    _topic_argument(reset, required=True)
    to = reset.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start")
    to.add_argument("--to-latest", action="store_true", help="the end (skip everything)")
    to.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="the first record at or after this time, e.g. 2026-12-02T13:00:00 (UTC unless "
        "it names a zone); the end if there is none",
    )
    to.add_argument("--shift-by", type=int, metavar="N", help="N records from the committed offset")
    to.add_argument("--to-offset", type=int, metavar="N", help="offset N")
    reset.add_argument("--execute", action="store_true", help="commit the new offsets")
    delete = gsub.add_parser("delete", help="delete empty groups and their committed offsets")
    delete.add_argument("group", nargs="+")
    delete_offsets = gsub.add_parser(
        "delete-offsets", help="delete a group's committed offsets of some partitions"
    )
    delete_offsets.add_argument("group")
    _topic_argument(delete_offsets, required=True)
    for p in (listing, describe, reset, delete, delete_offsets):
        add_bootstrap_server_argument(p)
        p.add_argument(
            "--timeout",
            type=float,
            default=15.0,
            metavar="SECONDS",
            help="give up after this long (default 15)",
        )
    groups.set_defaults(run=run)


def _topic_argument(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--topic",
        action="append",
        required=required,
        metavar="TOPIC[:P,P...]",
        help="a topic (all its partitions) or some of its partitions, e.g. orders:0,2 (repeatable)",
    )


def parse_topics(items: Sequence[str]) -> list[TopicPartition | str]:
    """``orders`` (every partition) or ``orders:0,2``."""
    out: list[TopicPartition | str] = []
    for item in items:
        topic, sep, parts = item.partition(":")
        if not topic:
            raise InvalidRequestError(f"--topic {item!r}: name a topic, e.g. orders or orders:0,1")
        if not sep:
            out.append(topic)
            continue
        for p in parts.split(","):
            if not p.strip().isdigit():
                raise InvalidRequestError(
                    f"--topic {item!r}: partitions are numbers separated by commas (orders:0,1)"
                )
            out.append(TopicPartition(topic, int(p)))
    return out


def reset_spec(args: argparse.Namespace) -> ResetSpec:
    from raftka.client.group_admin import ResetSpec

    if args.to_earliest:
        return ResetSpec("earliest")
    if args.to_latest:
        return ResetSpec("latest")
    if args.to_datetime is not None:
        try:
            when = datetime.fromisoformat(args.to_datetime)
        except ValueError:
            raise InvalidRequestError(
                f"--to-datetime {args.to_datetime!r} is not an ISO date and time "
                "(e.g. 2026-12-02T13:00:00 or 2026-12-02T13:00:00+01:00)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return ResetSpec("timestamp", int(when.timestamp() * 1000))
    if args.shift_by is not None:
        return ResetSpec("shift", args.shift_by)
    return ResetSpec("offset", args.to_offset)


def run(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[AsyncAdmin, argparse.Namespace], Coroutine[Any, Any, int]]] = {
        "list": _list,
        "describe": _describe,
        "reset-offsets": _reset,
        "delete": _delete,
        "delete-offsets": _delete_offsets,
    }
    action = actions[args.action]
    if args.action == "reset-offsets":
        reset_spec(args)  # bad input fails before any connection
    if getattr(args, "topic", None):
        parse_topics(args.topic)

    async def main() -> int:
        from raftka.client.admin import AsyncAdmin

        servers = resolve_bootstrap_servers(args.bootstrap_server)
        security = connection_security(args, servers).channel()
        async with AsyncAdmin(
            bootstrap_servers=servers, timeout_s=args.timeout, security=security
        ) as admin:
            return await action(admin, args)

    return asyncio.run(main())


def table(rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    )


def _partitions(tps: Sequence[TopicPartition] | frozenset[TopicPartition]) -> str:
    return ",".join(str(tp) for tp in sorted(tps)) or "-"


async def _list(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    groups = await admin.list_groups(args.state)
    if not groups:
        print("no groups")
        return 0
    print(
        table([("GROUP", "TYPE", "STATE"), *((g.group_id, g.group_type, g.state) for g in groups)])
    )
    return 0


def describe_text(d: GroupDescription) -> str:
    lines = [
        f"group {d.group_id}: {d.state} ({d.group_type}), group epoch {d.group_epoch}, "
        f"assignment epoch {d.assignment_epoch}, assignor {d.assignor or '-'}, "
        f"coordinator {d.coordinator}",
        "",
    ]
    if d.members:
        lines.append(
            table(
                [
                    ("MEMBER", "INSTANCE", "CLIENT", "HOST", "EPOCH", "STATE", "ASSIGNMENT"),
                    *(
                        (
                            m.member_id,
                            m.instance_id or None,
                            m.client_id or None,
                            m.client_host or None,
                            m.member_epoch,
                            m.member_state or None,
                            _partitions(m.assignment),
                        )
                        for m in d.members
                    ),
                ]
            )
        )
    else:
        lines.append("no active members")
    lines.append("")
    if d.offsets:
        lines.append(
            table(
                [
                    ("TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER"),
                    *(
                        (
                            o.partition.topic,
                            o.partition.partition,
                            o.committed,
                            o.end_offset,
                            o.lag,
                            o.member_id or None,
                        )
                        for o in d.offsets
                    ),
                ]
            )
        )
    else:
        lines.append("no committed offsets")
    return "\n".join(lines)


async def _describe(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    for i, d in enumerate(await admin.describe_groups(args.group)):
        if i:
            print()
        print(describe_text(d))
    return 0


async def _reset(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    plan = await admin.reset_offsets(
        args.group, reset_spec(args), parse_topics(args.topic), dry_run=not args.execute
    )
    print(
        table(
            [
                ("TOPIC", "PARTITION", "CURRENT", "NEW"),
                *((r.partition.topic, r.partition.partition, r.current, r.new) for r in plan),
            ]
        )
    )
    if args.execute:
        print(f"committed {len(plan)} offset(s) for group {args.group}")
    else:
        print("dry run: nothing committed (add --execute to commit these offsets)")
    return 0


def _report(results: dict[Any, RaftkaError | None], verb: str) -> int:
    failed = 0
    for key, error in results.items():
        if error is None:
            print(f"{verb} {key}")
        else:
            failed += 1
            print(f"{key}: {error.message}")
    return 1 if failed else 0


async def _delete(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    return _report(await admin.delete_groups(args.group), "deleted group")


async def _delete_offsets(admin: AsyncAdmin, args: argparse.Namespace) -> int:
    results = await admin.delete_offsets(args.group, parse_topics(args.topic))
    return _report(results, "deleted the committed offset of")
