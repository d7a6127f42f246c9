"""How commands find the cluster: one resolver for controller and broker addresses.

Admin commands take ``--bootstrap-controller`` (else ``$RAFTKA_BOOTSTRAP_CONTROLLER``); client
commands (produce, consume, perf) take ``--bootstrap-server`` (else
``$RAFTKA_BOOTSTRAP_SERVER``). Failing both, they read the cluster file of the local cluster
that ``raftka up`` runs in ``$RAFTKA_CLUSTER_DIR`` (default ``./raftka-data``).

Both also take the security options (auth_options.py); :func:`connection_security` resolves
them for the addresses found, using the TLS files of a ``raftka up --tls`` cluster when the
addresses are that cluster's.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from raftka.client.cli.auth_options import ClientSecurity, add_security_arguments, resolve_security
from raftka.common.errors import RaftkaError

DEFAULT_UP_DIR = Path("raftka-data")
CLUSTER_DIR_ENV = "RAFTKA_CLUSTER_DIR"
BOOTSTRAP_CONTROLLER_ENV = "RAFTKA_BOOTSTRAP_CONTROLLER"
BOOTSTRAP_SERVER_ENV = "RAFTKA_BOOTSTRAP_SERVER"


def cluster_dir() -> Path:
    """The directory of the local cluster commands act on (``raftka up --dir``)."""
    return Path(os.environ.get(CLUSTER_DIR_ENV) or DEFAULT_UP_DIR)


def connection_security(args: argparse.Namespace, addresses: Sequence[str]) -> ClientSecurity:
    """How the command reaches ``addresses``: its security options, else the environment,
    else the local cluster's TLS files if the addresses are the local cluster's."""
    return resolve_security(args, addresses, cluster_dir())


def add_bootstrap_controller_argument(parser: argparse.ArgumentParser) -> None:
    """--bootstrap-controller, --bootstrap-server, --timeout and the security options."""
    parser.add_argument(
        "--bootstrap-controller",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"controller addresses (default: ${BOOTSTRAP_CONTROLLER_ENV}, else ask the brokers "
        f"of --bootstrap-server, else the cluster started by `raftka up` in "
        f"${CLUSTER_DIR_ENV} or ./{DEFAULT_UP_DIR})",
    )
    parser.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"broker addresses to ask where the controllers are (default: "
        f"${BOOTSTRAP_SERVER_ENV})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="give up after this long (default 15)",
    )
    add_security_arguments(parser)


def add_bootstrap_server_argument(parser: argparse.ArgumentParser) -> None:
    """--bootstrap-server and the security options."""
    parser.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT[,HOST:PORT]",
        help=f"broker addresses (default: ${BOOTSTRAP_SERVER_ENV}, or the cluster started by "
        f"`raftka up` in ${CLUSTER_DIR_ENV} or ./{DEFAULT_UP_DIR})",
    )
    add_security_arguments(parser)


def resolve_bootstrap_controllers(value: str | None, up_dir: Path | None = None) -> list[str]:
    return _resolve(value, BOOTSTRAP_CONTROLLER_ENV, "bootstrap_controller", "controller", up_dir)


def controller_sources(
    controllers: str | None, servers: str | None, up_dir: Path | None = None
) -> tuple[list[str], list[str]]:
    """Where an admin command finds the controllers: ``(controller addresses, [])``, or
    ``([], broker addresses)`` to ask the brokers. In order: --bootstrap-controller,
    $RAFTKA_BOOTSTRAP_CONTROLLER, --bootstrap-server, $RAFTKA_BOOTSTRAP_SERVER, and the
    controllers of the local cluster."""
    for text in (controllers, os.environ.get(BOOTSTRAP_CONTROLLER_ENV)):
        if text:
            return _split(text), []
    for text in (servers, os.environ.get(BOOTSTRAP_SERVER_ENV)):
        if text:
            return [], _split(text)
    return resolve_bootstrap_controllers(None, up_dir), []


def _split(text: str) -> list[str]:
    addresses = [a.strip() for a in text.split(",") if a.strip()]
    if not addresses:
        raise RaftkaError(f"{text!r} names no address: use HOST:PORT[,HOST:PORT]")
    return addresses


def resolve_bootstrap_servers(value: str | None, up_dir: Path | None = None) -> list[str]:
    return _resolve(value, BOOTSTRAP_SERVER_ENV, "bootstrap_servers", "broker", up_dir)


def _resolve(
    value: str | None, env: str, cluster_key: str, what: str, up_dir: Path | None
) -> list[str]:
    text = value or os.environ.get(env)
    directory = up_dir or cluster_dir()
    if not text:
        from raftka.ops.cluster_file import read_cluster_file

        text = str(read_cluster_file(directory).get(cluster_key) or "")
    addresses = [a.strip() for a in (text or "").split(",") if a.strip()]
    if not addresses:
        option = "--bootstrap-controller" if what == "controller" else "--bootstrap-server"
        raise RaftkaError(
            f"no {what} address given: pass {option} HOST:PORT, set {env}, or start a local "
            f"cluster with `raftka up` (none is running in {directory}; set "
            f"{CLUSTER_DIR_ENV} to the directory you gave `raftka up --dir`)"
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
