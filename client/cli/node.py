"""``raftka node list|kill|pause|resume|restart``: act on the nodes of the local cluster that
``raftka up`` runs, for failover experiments by hand (the work is raftka.ops.node_control)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from raftka.client.cli.bootstrap import CLUSTER_DIR_ENV, DEFAULT_UP_DIR, cluster_dir

if TYPE_CHECKING:
    from raftka.ops.node_control import NodeStatus

ACTIONS = {
    "kill": "kill -9 the node (SIGKILL); the rest of the cluster keeps running",
    "pause": "freeze the node (SIGSTOP): it holds its connections and answers nothing",
    "resume": "let a paused node run again (SIGCONT)",
    "restart": "start a node that exited again (same config, data and log; a new incarnation); "
    "refuses a node that is still running or paused: kill it first",
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    node = sub.add_parser(
        "node",
        help="list, kill, pause, resume or restart nodes of the cluster `raftka up` runs",
        description="Act on the nodes of the local cluster that `raftka up` runs (found through "
        f"its cluster.json: --dir, else ${CLUSTER_DIR_ENV}, else ./{DEFAULT_UP_DIR}). "
        "Linux only.",
    )
    nsub = node.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = nsub.add_parser(
        "list", help="every node's id, roles, address, PID, state and incarnation"
    )
    listing.add_argument("--json", action="store_true", help="one JSON object per node")
    parsers = [listing]
    for action, text in ACTIONS.items():
        p = nsub.add_parser(action, help=text, description=text)
        p.add_argument("node_id", type=int, metavar="ID", help="the node's id")
        parsers.append(p)
    for p in parsers:
        p.add_argument(
            "--dir",
            type=Path,
            default=None,
            help=f"the directory given to `raftka up --dir` (default ${CLUSTER_DIR_ENV}, "
            f"else ./{DEFAULT_UP_DIR})",
        )
    node.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from raftka.ops import node_control

    directory: Path = args.dir or cluster_dir()
    if args.action == "list":
        statuses = node_control.node_statuses(directory)
        if args.json:
            for s in statuses:
                print(json.dumps({**s.entry.to_json(), "state": s.state.value}))
        else:
            print(_table(statuses))
            if not node_control.supervisor_running(directory):
                print(f"(no `raftka up` is running for {directory} any more)")
        return 0
    act = {
        "kill": node_control.kill_node,
        "pause": node_control.pause_node,
        "resume": node_control.resume_node,
        "restart": node_control.restart_node,
    }[args.action]
    print(act(directory, args.node_id))
    return 0


def _table(statuses: list[NodeStatus]) -> str:
    rows = [("ID", "ROLES", "ADDRESS", "PID", "STATE", "INCARNATION")]
    for s in statuses:
        state = s.state.value
        if state == "exited" and s.entry.exit:
            state += f" ({s.entry.exit})"
        rows.append(
            (
                str(s.node_id),
                ",".join(s.entry.roles),
                ",".join(s.entry.addresses.values()),
                str(s.pid) if s.pid is not None else "-",
                state,
                str(s.entry.incarnation),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]]).rstrip()
        for r in rows
    )
