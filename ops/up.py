"""``raftka up``: a local cluster (controllers and brokers) under one supervisor, with a demo.

The supervisor (supervisor.py) keeps running when a node dies, and starts nodes again when
``raftka node restart`` asks; ``cluster.json`` in the directory says which processes are the
nodes (cluster_file.py)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.demo import run_demo
from raftka.ops.kafka_access import (
    TLS_BROKER_SETTINGS,
    kafka_summary,
    make_password,
    set_kafka_password,
)
from raftka.ops.local_cluster import LocalCluster
from raftka.ops.supervisor import Supervisor
from raftka.v1 import controller_pb2 as pb


async def wait_for_leader(
    client: ControllerClient, timeout_s: float = 30.0
) -> pb.DescribeQuorumResponse:
    """Poll until some controller reports a leader that answers as the active controller."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            cluster = await client.describe_cluster()  # served only by the active controller
            quorum = await client.describe_quorum()
            if cluster.controller_id >= 0 and quorum.leader_id == cluster.controller_id:
                return quorum
        except RaftkaError as e:
            last_error = e.message
        await asyncio.sleep(0.1)
    raise RaftkaError(f"no controller leader within {timeout_s:g}s ({last_error})")


async def wait_for_brokers(client: ControllerClient, count: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(RaftkaError):
            described = await client.describe_cluster()
            if sum(1 for b in described.brokers if not b.fenced) >= count:
                return
        await asyncio.sleep(0.1)
    raise RaftkaError(f"{count} brokers did not register and catch up within {timeout_s:g}s")


def metrics_urls(cluster: LocalCluster) -> dict[str, str]:
    """Each node's Prometheus endpoint, by node id (as cluster.json records them)."""
    return {
        str(node_id): node.metrics_url
        for node_id, node in sorted({**cluster.nodes, **cluster.brokers}.items())
        if node.metrics_url is not None
    }


@dataclass(frozen=True, slots=True)
class UpOptions:
    directory: Path
    controllers: int = 3
    brokers: int = 3
    demo: bool = False
    exit_after_demo: bool = False
    directory_hint: str | None = None
    """A line telling how other commands find this cluster (``export RAFTKA_CLUSTER_DIR=...``),
    printed once it is up; None when they find it by default."""
    tls: bool = False
    """A secure cluster: a throwaway CA and certificates under ``<directory>/tls``, every node
    TLS + mTLS with the authorizer on (LocalCluster's ``tls``)."""
    security_settings: Mapping[str, object] = field(default_factory=dict)
    """Extra ``[security]`` keys for every node (tests)."""
    combined: bool = False
    """Every controller also runs the broker role (``brokers`` is then ignored)."""


def run_local_cluster(args: UpOptions) -> int:
    """Start a local cluster in ``args.directory`` and supervise it until Ctrl-C. Paths are
    absolute, so ``raftka node`` can tell the nodes' processes by their command lines."""
    directory = args.directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    cluster = LocalCluster(
        directory,
        controllers=args.controllers,
        brokers=0 if args.combined else args.brokers,
        combined=args.combined,
        metrics=True,
        tls=args.tls,
        security_settings=args.security_settings,
        # --tls: SASL_SSL Kafka listeners (ops/kafka_access.py).
        broker_settings=TLS_BROKER_SETTINGS if args.tls else None,
        kafka=not args.security_settings,
    )
    cluster.prepare()
    if args.tls:
        make_password(cluster)
    info: dict[str, object] = {
        "bootstrap_controller": ",".join(cluster.bootstrap),
        "bootstrap_servers": ",".join(cluster.bootstrap_servers),
        "kafka_bootstrap_servers": ",".join(cluster.kafka_bootstrap_servers),
        "cluster_id": cluster.cluster_id,
        "metrics": metrics_urls(cluster),
    }
    tls_files = cluster.admin_tls_files()
    if tls_files is not None:
        info["tls"] = tls_files.to_json()
    supervisor = Supervisor(cluster, info)
    supervisor.write()
    try:
        cluster.start()
        supervisor.write()
        return asyncio.run(_supervise(supervisor, args))
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping the cluster ...", flush=True)
        cluster.stop_all()
        print("stopped.", flush=True)


def tls_summary(cluster: LocalCluster) -> list[str]:
    """What ``raftka up`` says about a TLS cluster: where the CA and the admin's certificate
    are, and how the CLI and the Python client use them."""
    files = cluster.admin_tls_files()
    if files is None:
        return []
    settings = cluster.client_settings()
    python_args = ", ".join(f"{k}={v!r}" for k, v in settings.items())
    return [
        "TLS: every listener and channel is TLS with client certificates (mTLS), authorizer on",
        f"  CA certificate:       {files.ca_file}",
        f"  admin certificate:    {files.cert_file}   (User:admin, a super user)",
        f"  admin key:            {files.key_file}",
        "  raftka commands use these through cluster.json; elsewhere pass "
        f"--ca-file {files.ca_file} --cert-file {files.cert_file} --key-file {files.key_file}",
        "  Python client: Producer(bootstrap_servers=..., " + python_args + ")",
        "    (properties: security.protocol=SSL, ssl.ca.location, ssl.certificate.location, "
        "ssl.key.location; tokens: security.protocol=SASL_SSL, sasl.username, sasl.password)",
    ]


async def _supervise(supervisor: Supervisor, args: UpOptions) -> int:
    cluster = supervisor.cluster
    security = cluster.client_security() if cluster.tls else None
    async with ControllerClient(cluster.bootstrap, security=security) as client:
        try:
            quorum = await wait_for_leader(client)
            await wait_for_brokers(client, len(cluster.brokers))
        except RaftkaError:
            for node_id in {**cluster.nodes, **cluster.brokers}:
                print(f"--- node {node_id} log ---\n{cluster.log_tail(node_id)}")
            raise
        print(
            f"Raftka is up: {len(cluster.nodes)} controllers (leader: node {quorum.leader_id}, term {quorum.term}), "
            f"{len(cluster.brokers)} brokers" + (" (combined nodes)" if args.combined else "")
        )
        print(f"bootstrap servers (brokers): {','.join(cluster.bootstrap_servers)}")
        print(f"bootstrap controllers:       {','.join(cluster.bootstrap)}")
        if cluster.tls and cluster.kafka_bootstrap_servers:
            await set_kafka_password(cluster)
        for line in kafka_summary(cluster):
            print(line)
        print(f"data and logs: {cluster.base_dir}/{{node,broker}}-*/")
        print("Prometheus metrics (docs/operations.md, 'Metrics'):")
        for node, url in metrics_urls(cluster).items():
            print(f"  node {node}: {url}")
        for line in tls_summary(cluster):
            print(line)
        if args.directory_hint:
            print(args.directory_hint)
        if args.demo:
            await run_demo(cluster, client, wait_for_leader)
        if args.exit_after_demo:
            return 0
    print(
        "A node that exits is reported and the others keep running; "
        "try `raftka node list|kill|pause|resume|restart ID`.",
    )
    print("Press Ctrl-C to stop.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await supervisor.run(stop)
    return 0
