"""``raftka faults``: inject faults into one node of a cluster started with faults enabled."""

from __future__ import annotations

import argparse
import asyncio

from raftka.client.cli.auth_options import add_security_arguments
from raftka.client.cli.bootstrap import connection_security
from raftka.common.fault_service import rule_from_pb
from raftka.common.faults import Action, Direction, FaultPath, FaultRule


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    faults = sub.add_parser(
        "faults",
        help="inject faults into a node (only nodes started with faults.enabled = true)",
        description="Fault injection for failover experiments. Rules act on the node's traffic "
        "with its peers (Raft, replication, heartbeats, transaction markers), never on client traffic, and last "
        "until cleared or the node restarts.",
    )
    fsub = faults.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = fsub.add_parser("show", help="the rules in force on the node")
    drop = fsub.add_parser("drop", help="drop messages to/from chosen peers")
    delay = fsub.add_parser("delay", help="delay messages to/from chosen peers")
    delay.add_argument("--delay-ms", type=int, required=True, help="how long each message waits")
    isolate = fsub.add_parser("isolate", help="cut the node off from every peer on every path")
    slow = fsub.add_parser("slow-fsync", help="make every fsync wait first (0 turns it off)")
    slow.add_argument("--delay-ms", type=int, required=True)
    clear = fsub.add_parser("clear", help="remove every rule and the fsync delay")
    for p in (drop, delay):
        p.add_argument(
            "--path",
            action="append",
            default=[],
            choices=[x.value for x in FaultPath],
            help="raft, replication, heartbeat or markers (repeatable; default: all)",
        )
        p.add_argument(
            "--peer",
            action="append",
            default=[],
            type=int,
            metavar="NODE_ID",
            help="a peer node id (repeatable; default: every peer)",
        )
        p.add_argument(
            "--direction",
            choices=[d.value for d in Direction],
            default=Direction.BOTH.value,
            help="out: what the node sends; in: what it receives; both (default)",
        )
        p.add_argument(
            "--probability", type=float, default=1.0, help="chance each message is affected"
        )
    for p in (show, drop, delay, isolate, slow, clear):
        p.add_argument(
            "--node", required=True, metavar="HOST:PORT", help="the node's listen address"
        )
        p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
        add_security_arguments(p)
    faults.set_defaults(run=_run)


def rule_from_args(args: argparse.Namespace) -> FaultRule:
    return FaultRule(
        action=Action.DELAY if args.action == "delay" else Action.DROP,
        paths=frozenset(FaultPath(p) for p in args.path),
        peers=frozenset(args.peer),
        direction=Direction(args.direction),
        delay_ms=getattr(args, "delay_ms", 0) if args.action == "delay" else 0,
        probability=args.probability,
    )


def _run(args: argparse.Namespace) -> int:
    from raftka.ops.fault_client import FaultClient

    async def main() -> int:
        security = connection_security(args, [args.node]).channel()
        async with FaultClient(args.node, timeout_s=args.timeout, security=security) as client:
            if args.action in ("drop", "delay"):
                await client.inject([rule_from_args(args)])
            elif args.action == "isolate":
                await client.isolate()
            elif args.action == "slow-fsync":
                await client.inject(fsync_delay_ms=args.delay_ms)
            elif args.action == "clear":
                await client.clear()
            state = await client.describe()
        print(f"node {state.node_id} ({args.node}): fault injection {_on(state.enabled)}")
        for raw in state.rules:
            print(f"  {rule_from_pb(raw).describe()}")
        if state.fsync_delay_ms:
            print(f"  fsync delayed {state.fsync_delay_ms} ms")
        if state.enabled and not state.rules and not state.fsync_delay_ms:
            print("  no faults")
        return 0

    return asyncio.run(main())


def _on(enabled: bool) -> str:
    return "enabled" if enabled else "disabled (start the node with faults.enabled = true)"
