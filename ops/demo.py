"""The demo ``raftka up --demo`` runs, with the Python client: create a topic, produce keyed
records, kill -9 the controller leader, then a partition leader, producing all along, and
consume everything back."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from raftka.client.admin import AsyncAdmin
from raftka.client.consumer import AsyncConsumer
from raftka.client.producer import AsyncProducer
from raftka.client.types import TopicPartition
from raftka.common.errors import RaftkaError
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.local_cluster import LocalCluster
from raftka.v1 import controller_pb2 as pb

TOPIC = "demo"
PARTITIONS = 3
KEYS = ["alice", "bob", "carol", "dave", "erin", "frank"]


async def _produce_round(producer: AsyncProducer, round_name: str, count: int) -> None:
    futures = [
        await producer.send(TOPIC, f"{round_name} #{i}", key=KEYS[i % len(KEYS)])
        for i in range(count)
    ]
    for future in futures:
        md = await future
        print(f"  produced to {TOPIC}-{md.partition} at offset {md.offset}")


async def run_demo(
    cluster: LocalCluster,
    client: ControllerClient,
    wait_for_leader: Callable[[ControllerClient], Awaitable[pb.DescribeQuorumResponse]],
) -> None:
    print(
        f"\n== demo: topic '{TOPIC}', {PARTITIONS} partitions, 3 replicas, min.insync.replicas=2 =="
    )
    security = cluster.client_security() if cluster.tls else None
    settings = cluster.client_settings()  # TLS and the admin certificate, for a tls cluster
    async with AsyncAdmin(cluster.bootstrap, security=security) as admin:
        created = await admin.create_topic(
            TOPIC, PARTITIONS, 3, configs={"min.insync.replicas": "2"}
        )
    print(f"created topic {TOPIC} (id {created.topic_id})")
    async with AsyncProducer(
        bootstrap_servers=cluster.bootstrap_servers, compression_type="lz4", **settings
    ) as producer:
        print("producing keyed records (idempotent, acks=all; same key -> same partition) ...")
        await _produce_round(producer, "first", 9)

        leader = (await client.describe_quorum()).leader_id
        print(f"\nkill -9 the controller leader (node {leader}) ...")
        started = time.monotonic()
        cluster.kill(leader)
        quorum = await wait_for_leader(client)
        print(
            f"  node {quorum.leader_id} leads term {quorum.term} after "
            f"{time.monotonic() - started:.2f}s"
        )
        print("producing again (brokers keep serving through the controller failover) ...")
        await _produce_round(producer, "second", 6)
        print(f"restarting node {leader}; it rejoins the quorum as a follower")
        cluster.start(leader)

        victim_address = producer.metadata.leader_address(TOPIC, 0)
        victim = next(b for b, n in cluster.brokers.items() if n.address == victim_address)
        print(f"\nkill -9 broker {victim}, the leader of {TOPIC}-0 ...")
        started = time.monotonic()
        cluster.kill(victim)
        print("producing again: the producer retries until a new leader takes over ...")
        await _produce_round(producer, "third", 3)
        print(f"  done {time.monotonic() - started:.2f}s after the kill")

    print("\nconsuming everything back (nothing acknowledged was lost):")
    survivors = [n.address for b, n in cluster.brokers.items() if b != victim]
    async with AsyncConsumer(
        bootstrap_servers=survivors, auto_offset_reset="earliest", **settings
    ) as consumer:
        consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
        ends = await consumer.end_offsets(consumer.assignment())
        total = sum(ends.values())
        seen = 0
        deadline = time.monotonic() + 30
        while seen < total:
            if time.monotonic() > deadline:
                raise RaftkaError(f"read {seen} of {total} records back within 30 s")
            for r in await consumer.poll(timeout_ms=1000):
                seen += 1
                key = (r.key or b"").decode()
                print(
                    f"  {TOPIC}-{r.partition} offset {r.offset}: key={key} value={(r.value or b'').decode()}"
                )
    print(f"\nrestarting broker {victim}; it catches up and rejoins the ISR")
    cluster.start(victim)
