"""``raftka partitions``: leader elections and replica reassignment.

raftka partitions elect --type preferred|unclean [--topic T [--partition P]]
raftka partitions reassign --topic T --partition P (--replicas 1,2,3 | --cancel)
raftka partitions reassignments [--topic T ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from raftka.client.cli.admin import with_client
from raftka.client.cli.bootstrap import add_bootstrap_controller_argument
from raftka.common.errors import InvalidRequestError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb

ELECTION_TYPES = {"preferred": pb.ELECTION_TYPE_PREFERRED, "unclean": pb.ELECTION_TYPE_UNCLEAN}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bootstrap = add_bootstrap_controller_argument
    partitions = sub.add_parser(
        "partitions", help="elect partition leaders and reassign partition replicas"
    )
    psub = partitions.add_subparsers(dest="action", required=True, metavar="ACTION")
    elect = psub.add_parser(
        "elect", help="elect preferred leaders, or (unclean) leaders of offline partitions"
    )
    elect.add_argument("--type", choices=sorted(ELECTION_TYPES), default="preferred")
    elect.add_argument("--topic", help="only this topic (default: every partition)")
    elect.add_argument(
        "--partition", type=int, help="only this partition of --topic (default: all of it)"
    )
    reassign = psub.add_parser(
        "reassign", help="move a partition to new replicas (or cancel a move in progress)"
    )
    reassign.add_argument("--topic", required=True)
    reassign.add_argument("--partition", type=int, required=True)
    target = reassign.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--replicas", metavar="ID,ID,...", help="the target replicas, preferred leader first"
    )
    target.add_argument("--cancel", action="store_true", help="cancel the move in progress")
    listing = psub.add_parser("reassignments", help="reassignments in progress")
    listing.add_argument("--topic", action="append", default=[], help="only these topics")
    for p in (elect, reassign, listing):
        bootstrap(p)
    actions: dict[str, Callable[[ControllerClient, argparse.Namespace], object]] = {
        "elect": _elect,
        "reassign": _reassign,
        "reassignments": _reassignments,
    }
    partitions.set_defaults(run=with_client(lambda c, a: actions[a.action](c, a)))


def _error_text(code: int, message: str) -> str:
    return f"{cpb.ErrorCode.Name(code)}: {message}"  # type: ignore[arg-type]


async def _elect(client: ControllerClient, args: argparse.Namespace) -> int:
    if args.partition is not None and args.topic is None:
        raise InvalidRequestError("--partition needs --topic")
    election_type = ELECTION_TYPES[args.type]
    if args.topic is None:
        results = await client.elect_leaders(election_type)
    elif args.partition is None:
        results = await client.elect_leaders(election_type, topics=[args.topic])
    else:
        results = await client.elect_leaders(election_type, [(args.topic, args.partition)])
    failed = 0
    shown = 0
    for topic_result in results:
        for r in topic_result.partitions:
            shown += 1
            name = topic_result.topic + (f"-{r.partition}" if r.partition >= 0 else "")
            if r.error_code == cpb.NONE:
                note = (
                    " (UNCLEAN: records acknowledged by the old ISR may be lost)"
                    if r.unclean
                    else ""
                )
                print(f"{name}: leader {r.leader} (leader epoch {r.leader_epoch}){note}")
            else:
                if r.error_code != cpb.ELECTION_NOT_NEEDED:
                    failed += 1
                print(f"{name}: {_error_text(r.error_code, r.error_message)}")
    if shown == 0:
        print("no partition needed an election")
    return 1 if failed else 0


async def _reassign(client: ControllerClient, args: argparse.Namespace) -> int:
    replicas: list[int] | None = None
    if not args.cancel:
        try:
            replicas = [int(x) for x in args.replicas.split(",") if x.strip()]
        except ValueError:
            raise InvalidRequestError(
                f"--replicas {args.replicas!r} must be broker ids separated by commas"
            ) from None
    results = await client.alter_partition_reassignments({(args.topic, args.partition): replicas})
    failed = 0
    for topic_result in results:
        for r in topic_result.partitions:
            name = f"{topic_result.name}-{r.partition}"
            if r.error_code == cpb.NONE:
                verb = "cancelled the reassignment of" if args.cancel else "reassigning"
                target = "" if replicas is None else f" to {','.join(map(str, replicas))}"
                print(f"{verb} {name}{target}")
            else:
                failed += 1
                print(f"{name}: {_error_text(r.error_code, r.error_message)}")
    return 1 if failed else 0


async def _reassignments(client: ControllerClient, args: argparse.Namespace) -> int:
    ongoing = await client.list_partition_reassignments(args.topic)
    if not ongoing:
        print("no reassignment in progress")
        return 0
    for r in ongoing:
        print(
            f"Topic: {r.topic}\tPartition: {r.partition}\tReplicas: {_ids(r.replicas)}"
            f"\tAdding: {_ids(r.adding_replicas)}\tRemoving: {_ids(r.removing_replicas)}"
            f"\tIsr: {_ids(r.isr)}\tLeader: {r.leader}"
        )
    return 0


def _ids(values: Iterable[int]) -> str:
    return ",".join(map(str, values)) or "-"
