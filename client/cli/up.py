"""``raftka up [--tls]``: run a local cluster on 127.0.0.1 (the work is raftka.ops.up)."""

from __future__ import annotations

import argparse
from pathlib import Path

from raftka.client.cli.bootstrap import CLUSTER_DIR_ENV, DEFAULT_UP_DIR, cluster_dir


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help="run a local cluster on 127.0.0.1 until Ctrl-C")
    up.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"where nodes keep data and logs (default ${CLUSTER_DIR_ENV}, else ./raftka-data)",
    )
    up.add_argument(
        "--controllers", type=int, default=3, choices=(1, 3, 5), help="number of controller voters"
    )
    up.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    up.add_argument(
        "--combined",
        action="store_true",
        help="combined nodes: every controller also runs the broker role, one process per "
        "node (--brokers is ignored); docs/operations.md compares the two layouts",
    )
    up.add_argument(
        "--tls",
        action="store_true",
        help="a secure cluster: a throwaway CA and certificates under DIR/tls, every node "
        "TLS with client certificates (mTLS) and the authorizer on; the admin certificate "
        "(User:admin, a super user) is recorded in DIR/cluster.json for the raftka commands",
    )
    up.add_argument(
        "--demo",
        action="store_true",
        help="run a short demo against the cluster, then keep it running",
    )
    up.add_argument(
        "--exit-after-demo", action="store_true", help="stop the cluster once the demo is done"
    )
    up.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    import shlex

    from raftka.ops.up import UpOptions, run_local_cluster

    directory: Path = (args.dir or cluster_dir()).resolve()
    hint = None
    if directory != DEFAULT_UP_DIR.resolve():
        hint = f"export {CLUSTER_DIR_ENV}={shlex.quote(str(directory))}"
    return run_local_cluster(
        UpOptions(
            directory=directory,
            directory_hint=hint,
            controllers=args.controllers,
            brokers=args.brokers,
            demo=args.demo,
            exit_after_demo=args.exit_after_demo,
            tls=args.tls,
            combined=args.combined,
        )
    )
