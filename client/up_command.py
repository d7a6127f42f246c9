"""``raftka up``: a local cluster under one supervisor, with an optional demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import time
from pathlib import Path

from raftka.broker.lifecycle import BrokerLifecycle
from raftka.client.controller_client import ControllerClient
from raftka.client.local_cluster import LocalCluster
from raftka.common.errors import RaftkaError
from raftka.v1 import common_pb2 as cpb
from raftka.v1 import controller_pb2 as pb

CLUSTER_FILE = "cluster.json"


def read_bootstrap(directory: Path) -> str | None:
    path = directory / CLUSTER_FILE
    if not path.exists():
        return None
    try:
        return str(json.loads(path.read_text())["bootstrap_controller"])
    except (ValueError, KeyError):
        return None


async def wait_for_leader(
    client: ControllerClient, timeout_s: float = 30.0
) -> pb.DescribeQuorumResponse:
    """Poll until some controller reports a leader that answers as the active controller."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            # DescribeCluster is served only by the active controller.
            cluster = await client.describe_cluster()
            quorum = await client.describe_quorum()
            if cluster.controller_id >= 0 and quorum.leader_id == cluster.controller_id:
                return quorum
        except RaftkaError as e:
            last_error = e.message
        await asyncio.sleep(0.1)
    raise RaftkaError(f"no controller leader within {timeout_s:g}s ({last_error})")


def run(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    cluster = LocalCluster(directory, controllers=args.controllers)
    cluster.prepare()
    (directory / CLUSTER_FILE).write_text(
        json.dumps(
            {"bootstrap_controller": ",".join(cluster.bootstrap), "cluster_id": cluster.cluster_id}
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
        except RaftkaError:
            for node_id in cluster.nodes:
                print(f"--- node {node_id} log ---\n{cluster.log_tail(node_id)}")
            raise
        print(
            f"Raftka is up: {len(cluster.nodes)} controllers, leader node {quorum.leader_id}, term {quorum.term}"
        )
        print(f"bootstrap controller: {','.join(cluster.bootstrap)}")
        print(f"data and logs: {cluster.base_dir}/node-*/")
        brokers: list[BrokerLifecycle] = []
        try:
            if args.demo:
                brokers = await _demo(cluster, client)
            if args.exit_after_demo:
                return 0
            print("Press Ctrl-C to stop.", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            while not stop.is_set():
                for node in cluster.nodes.values():
                    if not node.running:
                        print(f"node {node.node_id} exited; see {node.log_path}")
                        return 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
            return 0
        finally:
            for broker in brokers:
                await broker.close()


async def _demo(cluster: LocalCluster, client: ControllerClient) -> list[BrokerLifecycle]:
    print("\n== demo: the metadata plane ==")
    print(
        "Registering 3 brokers with the controller quorum (broker lifecycle agents, in racks a/b/c) ..."
    )
    brokers = [
        BrokerLifecycle(
            cluster.bootstrap,
            broker_id=100 + i,
            cluster_id=cluster.cluster_id,
            listeners=[cpb.Endpoint(name="CLIENT", host="127.0.0.1", port=19092 + i)],
            rack="abc"[i],
        )
        for i in range(3)
    ]
    for broker in brokers:
        await broker.start()
    await asyncio.wait_for(asyncio.gather(*(b.wait_unfenced() for b in brokers)), 30)
    print("  all 3 brokers registered and unfenced")
    results = await client.create_topics(
        [
            pb.NewTopic(
                name="demo",
                num_partitions=6,
                replication_factor=3,
                configs={"retention.ms": "3600000"},
            )
        ]
    )
    for r in results:
        print(f"created topic {r.name} (id {r.topic_id}): {cpb.ErrorCode.Name(r.error_code)}")
    await _print_topic(client, "demo")
    quorum = await client.describe_quorum()
    leader = quorum.leader_id
    print(f"\nkill -9 the controller leader (node {leader}) ...")
    started = time.monotonic()
    cluster.kill(leader)
    new_quorum = await wait_for_leader(client)
    print(
        f"  node {new_quorum.leader_id} leads term {new_quorum.term} after {time.monotonic() - started:.2f}s"
    )
    await _print_topic(client, "demo")
    print(f"restarting node {leader}; it rejoins as a follower and catches up")
    cluster.start(leader)
    return brokers


async def _print_topic(client: ControllerClient, name: str) -> None:
    for t in await client.describe_topics([name]):
        for p in t.partitions:
            print(
                f"  {t.name}-{p.partition}: leader {p.leader} replicas {list(p.replicas)} isr {list(p.isr)}"
                f" leader_epoch {p.leader_epoch}"
            )
