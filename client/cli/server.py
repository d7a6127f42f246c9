"""``raftka format`` and ``raftka server``: prepare and run one node from its config file."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from raftka.common.logging import configure_logging


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _format(args: argparse.Namespace) -> int:
    from raftka.common.config import load_config
    from raftka.common.data_dir import format_data_dir, new_cluster_id
    from raftka.ops.node import NodeConfig

    config = load_config(NodeConfig, args.config)
    cluster_id = args.cluster_id or new_cluster_id()
    format_data_dir(config.data_dir, cluster_id, config.node_id)
    print(f"formatted {config.data_dir} for node {config.node_id} of cluster {cluster_id}")
    return 0


def _server(args: argparse.Namespace) -> int:
    from raftka.common.config import load_config
    from raftka.ops.node import NodeConfig, run_node

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
