"""The ``raftka`` command line.

    raftka up [--demo]                 a local cluster (3 controllers) under one supervisor
    raftka format --config node.toml   prepare a node's data directory
    raftka server --config node.toml   run one node
    raftka topics create|delete|list|describe|add-partitions ...
    raftka configs describe|alter ...
    raftka quorum describe|transfer-leadership
    raftka cluster describe
    raftka partitions elect|reassign|reassignments ...
    raftka faults show|drop|delay|isolate|slow-fsync|clear --node HOST:PORT
    raftka consume TOPIC [--from-beginning | --offset N] [--format value|kv|json] ...
    raftka produce TOPIC [--key-separator SEP] [--acks all|1|0] < lines
    raftka perf produce --topic T --num-records N --record-size B [--throughput R]
    raftka perf consume --topic T --messages N
    raftka experiment --duration 60 --seed 7 --faults kill,pause,partition --out DIR

Admin commands find the controllers with --bootstrap-controller (or RAFTKA_BOOTSTRAP_CONTROLLER,
or the cluster file ``raftka up`` writes into its directory); client commands (produce, consume, perf)
find the brokers with --bootstrap-server (or RAFTKA_BOOTSTRAP_SERVER, or that same file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from raftka.client import (
    admin_commands,
    consume_commands,
    experiment_commands,
    fault_commands,
    partition_commands,
    perf_commands,
    produce_commands,
    up_command,
)
from raftka.common.errors import RaftkaError
from raftka.common.logging import configure_logging

DEFAULT_UP_DIR = Path("raftka-data")
BOOTSTRAP_ENV = "RAFTKA_BOOTSTRAP_CONTROLLER"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftka", description="Raftka: a Raft-coordinated streaming log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fmt = sub.add_parser(
        "format", help="format a node's data directory (once, before the first start)"
    )
    fmt.add_argument("--config", type=Path, required=True, help="the node's TOML config file")
    fmt.add_argument(
        "--cluster-id", help="cluster id shared by every node (default: a new random id)"
    )
    fmt.set_defaults(run=_format)

    server = sub.add_parser("server", help="run one node from its config file")
    server.add_argument("--config", type=Path, required=True, help="the node's TOML config file")
    server.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. controller.tick_ms=50",
    )
    server.set_defaults(run=_server)

    up = sub.add_parser("up", help="run a local cluster on 127.0.0.1 until Ctrl-C")
    up.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_UP_DIR,
        help=f"where nodes keep data and logs (default {DEFAULT_UP_DIR})",
    )
    up.add_argument(
        "--controllers", type=int, default=3, choices=(1, 3, 5), help="number of controller voters"
    )
    up.add_argument("--brokers", type=int, default=3, help="number of brokers (default 3)")
    up.add_argument(
        "--demo",
        action="store_true",
        help="run a short demo against the cluster, then keep it running",
    )
    up.add_argument(
        "--exit-after-demo", action="store_true", help="stop the cluster once the demo is done"
    )
    up.set_defaults(run=up_command.run)

    admin_commands.add_commands(sub, _bootstrap_argument)
    partition_commands.add_commands(sub, _bootstrap_argument)
    fault_commands.add_commands(sub)
    produce_commands.add_commands(sub)
    consume_commands.add_commands(sub)
    perf_commands.add_commands(sub)
    experiment_commands.add_commands(sub)
    return parser


def _bootstrap_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-controller",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"controller addresses (default: ${BOOTSTRAP_ENV}, or the cluster started by `raftka up`)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="give up after this long (default 15)",
    )


def resolve_bootstrap(value: str | None) -> list[str]:
    text = value or os.environ.get(BOOTSTRAP_ENV) or up_command.read_bootstrap(DEFAULT_UP_DIR)
    if not text:
        raise RaftkaError(
            "no controller address given: pass --bootstrap-controller HOST:PORT, set "
            f"{BOOTSTRAP_ENV}, or start a local cluster with `raftka up`"
        )
    return [a.strip() for a in text.split(",") if a.strip()]


def _format(args: argparse.Namespace) -> int:
    from raftka.client.node import NodeConfig
    from raftka.common.config import load_config
    from raftka.common.data_dir import format_data_dir, new_cluster_id

    config = load_config(NodeConfig, args.config)
    cluster_id = args.cluster_id or new_cluster_id()
    format_data_dir(config.data_dir, cluster_id, config.node_id)
    print(f"formatted {config.data_dir} for node {config.node_id} of cluster {cluster_id}")
    return 0


def _server(args: argparse.Namespace) -> int:
    from raftka.client.node import NodeConfig, run_node
    from raftka.common.config import load_config

    config = load_config(NodeConfig, args.config, args.set)
    configure_logging(
        config.log.level, config.log.format, node=f"{'+'.join(config.roles)}-{config.node_id}"
    )
    _install_uvloop()
    asyncio.run(run_node(config))
    return 0


def _install_uvloop() -> None:
    if os.environ.get("RAFTKA_NO_UVLOOP"):
        return
    try:
        import uvloop
    except ImportError:
        return
    uvloop.install()


def run_async(main: Callable[[], Awaitable[int]]) -> int:
    return asyncio.run(main())  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "server":
        configure_logging("warning", "console")
    try:
        code: int = args.run(args)
    except RaftkaError as e:
        print(f"raftka {args.command}: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
