"""``raftka up``: a local cluster (controllers and brokers) under one supervisor, with a demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import time
from pathlib import Path

from raftka.client.controller_client import ControllerClient
from raftka.client.demo import run_demo
from raftka.client.local_cluster import LocalCluster
from raftka.common.errors import RaftkaError
from raftka.v1 import controller_pb2 as pb

CLUSTER_FILE = "cluster.json"


def read_cluster_file(directory: Path) -> dict[str, str]:
    path = directory / CLUSTER_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def read_bootstrap(directory: Path) -> str | None:
    return read_cluster_file(directory).get("bootstrap_controller")


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


def run(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    cluster = LocalCluster(directory, controllers=args.controllers, brokers=args.brokers)
    cluster.prepare()
    (directory / CLUSTER_FILE).write_text(
        json.dumps(
            {
                "bootstrap_controller": ",".join(cluster.bootstrap),
                "bootstrap_servers": ",".join(cluster.bootstrap_servers),
                "cluster_id": cluster.cluster_id,
            }
        )
    )
    cluster.start()
    try:
        return asyncio.run(_supervise(cluster, args))
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping the cluster ...", flush=True)
        cluster.stop_all()
        print("stopped.", flush=True)


async def _supervise(cluster: LocalCluster, args: argparse.Namespace) -> int:
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
        if args.demo:
            await run_demo(cluster, client, wait_for_leader)
        if args.exit_after_demo:
            return 0
        print("Press Ctrl-C to stop.", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        while not stop.is_set():
            for node in [*cluster.nodes.values(), *cluster.brokers.values()]:
                if not node.running:
                    print(f"node {node.node_id} exited; see {node.log_path}")
                    return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        return 0
