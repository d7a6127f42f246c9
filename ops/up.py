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
from dataclasses import dataclass
from pathlib import Path

from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.demo import run_demo
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


def run_local_cluster(args: UpOptions) -> int:
    """Start a local cluster in ``args.directory`` and supervise it until Ctrl-C. Paths are
    absolute, so ``raftka node`` can tell the nodes' processes by their command lines."""
    directory = args.directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    cluster = LocalCluster(
        directory, controllers=args.controllers, brokers=args.brokers, metrics=True
    )
    cluster.prepare()
    supervisor = Supervisor(
        cluster,
        {
            "bootstrap_controller": ",".join(cluster.bootstrap),
            "bootstrap_servers": ",".join(cluster.bootstrap_servers),
            "cluster_id": cluster.cluster_id,
            "metrics": metrics_urls(cluster),
        },
    )
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


async def _supervise(supervisor: Supervisor, args: UpOptions) -> int:
    cluster = supervisor.cluster
    async with ControllerClient(cluster.bootstrap) as client:
        try:
            quorum = await wait_for_leader(client)
            await wait_for_brokers(client, len(cluster.brokers))
        except RaftkaError:
            for node_id in [*cluster.nodes, *cluster.brokers]:
                print(f"--- node {node_id} log ---\n{cluster.log_tail(node_id)}")
            raise
        print(
            f"Raftka is up: {len(cluster.nodes)} controllers (leader: node {quorum.leader_id}, term {quorum.term}), "
            f"{len(cluster.brokers)} brokers"
        )
        print(f"bootstrap servers (brokers): {','.join(cluster.bootstrap_servers)}")
        print(f"bootstrap controllers:       {','.join(cluster.bootstrap)}")
        print(f"data and logs: {cluster.base_dir}/{{node,broker}}-*/")
        print("Prometheus metrics (docs/operations.md, 'Metrics'):")
        for node, url in metrics_urls(cluster).items():
            print(f"  node {node}: {url}")
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
