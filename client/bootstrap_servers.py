"""``--bootstrap-server``: how the commands that talk to brokers (consume, perf, produce) find
them: the option, else $RAFTKA_BOOTSTRAP_SERVER, else the cluster `raftka up` is running."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from raftka.client import up_command
from raftka.common.errors import RaftkaError

BOOTSTRAP_SERVER_ENV = "RAFTKA_BOOTSTRAP_SERVER"


def add_bootstrap_server_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"broker addresses (default: ${BOOTSTRAP_SERVER_ENV}, or the cluster started by "
        "`raftka up` in this directory)",
    )


def resolve_bootstrap_servers(value: str | None, up_dir: Path | None = None) -> list[str]:
    if up_dir is None:
        from raftka.client.cli import DEFAULT_UP_DIR

        up_dir = DEFAULT_UP_DIR
    text = (
        value
        or os.environ.get(BOOTSTRAP_SERVER_ENV)
        or up_command.read_cluster_file(up_dir).get("bootstrap_servers")
    )
    addresses = [a.strip() for a in (text or "").split(",") if a.strip()]
    if not addresses:
        raise RaftkaError(
            "no broker address given: pass --bootstrap-server HOST:PORT, set "
            f"{BOOTSTRAP_SERVER_ENV}, or start a local cluster here with `raftka up`"
        )
    return addresses


def parse_properties(items: list[str], option: str) -> dict[str, str]:
    """``NAME=VALUE`` options (``--consumer-property fetch.max.wait.ms=100``) as a dict."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise RaftkaError(f"{option} {item!r} must look like NAME=VALUE")
        out[name.strip()] = value
    return out
