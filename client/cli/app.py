"""The ``raftka`` command line.

    raftka up [--tls] [--demo]         a local cluster (3 controllers) under one supervisor
    raftka node list|kill|pause|resume|restart ID   the nodes of that cluster, by hand
    raftka format --config node.toml   prepare a node's data directory
    raftka server --config node.toml   run one node
    raftka topics create|delete|list|describe|add-partitions ...
    raftka configs describe|alter ...
    raftka acls add|list|remove ...   ACLs (--allow-principal User:alice --operation write --topic T)
    raftka quorum describe|transfer-leadership
    raftka cluster describe
    raftka partitions elect|reassign|reassignments ...
    raftka faults show|drop|delay|isolate|slow-fsync|clear --node HOST:PORT
    raftka consume TOPIC [--from-beginning | --offset N] [--group G] [--format value|kv|json] ...
    raftka groups list|describe|reset-offsets|delete|delete-offsets ...
    raftka users add|list|remove ...   users whose passwords bearer tokens are checked against
    raftka quotas set|remove|list [--user U | --default-user] [--client-id C | --default-client-id]
    raftka produce TOPIC [--key-separator SEP] [--acks all|1|0] < lines
    raftka copy --source-topic X --target-topic Y --group G --transactional-id T [--to-bootstrap B]
    raftka perf produce --topic T --num-records N --record-size B [--throughput R]
    raftka perf consume --topic T --messages N
    raftka experiment --duration 60 --seed 7 --faults kill,pause,partition --out DIR

Admin commands find the controllers with --bootstrap-controller (or RAFTKA_BOOTSTRAP_CONTROLLER,
or the cluster file ``raftka up`` writes into its directory, $RAFTKA_CLUSTER_DIR or ./raftka-data);
client commands (produce, consume, copy, perf) find the brokers with --bootstrap-server (or
RAFTKA_BOOTSTRAP_SERVER, or that same file): see bootstrap.py. Every command that connects
takes --ca-file / --cert-file / --key-file / --token-user / --token-password-file (or
RAFTKA_CA_FILE, ...), and uses the TLS files of a `raftka up --tls` cluster by itself: see auth_options.py.

Each command group is one module here with an ``add_commands(sub)``; none imports this one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from raftka.client.cli import (
    acls,
    admin,
    consume,
    copy,
    experiment,
    faults,
    groups,
    node,
    partitions,
    perf,
    produce,
    quotas,
    server,
    up,
    users,
)
from raftka.common.errors import RaftkaError
from raftka.common.logging import configure_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raftka", description="Raftka: a Raft-coordinated streaming log."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (
        server,
        up,
        node,
        admin,
        acls,
        partitions,
        faults,
        produce,
        consume,
        copy,
        groups,
        users,
        quotas,
        perf,
        experiment,
    ):
        group.add_commands(sub)
    return parser


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
