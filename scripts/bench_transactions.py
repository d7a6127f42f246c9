"""Transaction figures on a local cluster (3 controllers + 3 brokers on 127.0.0.1, RF 3,
min.insync.replicas 2, acks=all).

    .venv/bin/python scripts/bench_transactions.py rate --seconds 5 --runs 3
    .venv/bin/python scripts/bench_transactions.py copy --records 50000 --runs 3
    .venv/bin/python scripts/bench_transactions.py failover --trials 20

``rate``: committed transactions per second of ``--producers`` transactional producers (each
its own transactional id), with 1, 10 and 100 records (100 bytes) per transaction spread over
the 3 partitions of a topic; beside it, in the same run, the same records sent by as many
idempotent producers without transactions (records/s), and the ratio.

``copy``: end-to-end copy of a topic of ``--records`` records (3 partitions, 100 bytes each),
records/s: exactly once (``raftka copy``: read_committed, transactions that carry the consumer
offsets) against the same loop without transactions (idempotent producer, offsets committed
after each flush: at least once). Each run copies into a fresh target topic and group.

``failover``: each trial opens a transaction (3 records on 3 partitions), kills -9 the broker
that coordinates its transactional id, then calls commit_transaction() and measures the time
from the kill until a read_committed consumer sees all 3 records (the new coordinator has
completed the transaction on every partition); the broker is restarted before the next trial.
Prints every trial and run, then the median (and max).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc

from raftka.client import AsyncConsumer, AsyncProducer, TopicPartition
from raftka.client.admin import AsyncAdmin
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from raftka.v1 import groups_pb2 as gpb
from raftka.v1.common_pb2 import ErrorCode
from raftka.v1.groups_pb2_grpc import GroupServiceStub

PARTITIONS = 3
VALUE = b"x" * 100
CONTROLLER = {"broker_session_timeout_ms": 2500, "heartbeat_interval_ms": 60, "tick_ms": 20, "election_timeout_ms": 300}  # fmt: skip
BROKER = {"heartbeat_interval_ms": 200}


async def _ready(cluster: LocalCluster, topics: list[str]) -> None:
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(600):
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        for topic in topics:
            await admin.create_topic(topic, PARTITIONS, 3, configs={"min.insync.replicas": "2"})


def _producer(cluster: LocalCluster, transactional_id: str | None, **extra: Any) -> AsyncProducer:
    settings: dict[str, Any] = {"bootstrap_servers": cluster.bootstrap_servers, "linger_ms": 5}
    if transactional_id is not None:
        settings["transactional_id"] = transactional_id
    return AsyncProducer(**{**settings, **extra})


# ---------------------------------------------------------------- rate


async def _txn_loop(cluster: LocalCluster, tid: str, per_txn: int, seconds: float) -> int:
    async with _producer(cluster, tid) as producer:
        await producer.init_transactions()
        done = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            producer.begin_transaction()
            for i in range(per_txn):
                await producer.send("bench-txn", VALUE, partition=i % PARTITIONS)
            await producer.commit_transaction()
            done += 1
        return done


async def _plain_loop(cluster: LocalCluster, per_batch: int, seconds: float) -> int:
    async with _producer(cluster, None) as producer:
        sent = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            futures = [
                await producer.send("bench-txn", VALUE, partition=i % PARTITIONS)
                for i in range(per_batch)
            ]
            await asyncio.gather(*futures)
            sent += per_batch
        return sent


async def rate(cluster: LocalCluster, args: argparse.Namespace) -> None:
    await _ready(cluster, ["bench-txn"])
    for per_txn in (1, 10, 100):
        txn_rates, plain_rates = [], []
        for run in range(args.runs):
            started = time.monotonic()
            counts = await asyncio.gather(
                *(
                    _txn_loop(cluster, f"bench-{per_txn}-{run}-{p}", per_txn, args.seconds)
                    for p in range(args.producers)
                )
            )
            txn_rate = sum(counts) / (time.monotonic() - started)
            started = time.monotonic()
            sent = await asyncio.gather(
                *(_plain_loop(cluster, per_txn, args.seconds) for _ in range(args.producers))
            )
            plain_rate = sum(sent) / (time.monotonic() - started)
            txn_rates.append(txn_rate)
            plain_rates.append(plain_rate)
            print(
                f"{per_txn:>3} records/txn run {run + 1}: {txn_rate:,.1f} txn/s "
                f"({txn_rate * per_txn:,.0f} records/s) vs {plain_rate:,.0f} records/s without "
                f"transactions (same waits: each group of {per_txn} awaited)",
                flush=True,
            )
        t, p = statistics.median(txn_rates), statistics.median(plain_rates)
        print(
            f"{per_txn:>3} records/txn, median of {args.runs}: {t:,.1f} txn/s = "
            f"{t * per_txn:,.0f} records/s; without transactions {p:,.0f} records/s; ratio "
            f"{t * per_txn / p:.2f}",
            flush=True,
        )


# ---------------------------------------------------------------- copy


async def _fill(cluster: LocalCluster, topic: str, records: int) -> None:
    async with _producer(cluster, None, linger_ms=20) as producer:
        futures = [await producer.send(topic, VALUE + str(i).encode()) for i in range(records)]
        await asyncio.gather(*futures)


def _consumer(cluster: LocalCluster, group: str) -> AsyncConsumer:
    return AsyncConsumer(
        bootstrap_servers=cluster.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def _copy(cluster: LocalCluster, records: int, target: str, transactional: bool) -> float:
    group = f"copy-{target}"
    consumer = _consumer(cluster, group)
    producer = _producer(cluster, f"copier-{target}" if transactional else None)
    copied = 0
    started = time.monotonic()
    try:
        consumer.subscribe(["bench-source"])
        if transactional:
            await producer.init_transactions()
        while copied < records:
            batch = await consumer.poll(timeout_ms=1000, max_records=2000)
            if not batch:
                continue
            if transactional:
                producer.begin_transaction()
            futures = [await producer.send(target, r.value) for r in batch]
            positions = {r.topic_partition: r.offset + 1 for r in batch}
            if transactional:
                await producer.send_offsets_to_transaction(positions, consumer.group_metadata())
                await producer.commit_transaction()
            else:
                await asyncio.gather(*futures)
                await consumer.commit(positions)
            copied += len(batch)
        return copied / (time.monotonic() - started)
    finally:
        await producer.close()
        await consumer.close()


async def copy(cluster: LocalCluster, args: argparse.Namespace) -> None:
    await _ready(cluster, ["bench-source"])
    await _fill(cluster, "bench-source", args.records)
    eos, alo = [], []
    for run in range(args.runs):
        async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
            for name in (f"eos-{run}", f"alo-{run}"):
                await admin.create_topic(name, PARTITIONS, 3, configs={"min.insync.replicas": "2"})
        eos.append(await _copy(cluster, args.records, f"eos-{run}", True))
        alo.append(await _copy(cluster, args.records, f"alo-{run}", False))
        print(
            f"copy run {run + 1}: exactly once {eos[-1]:,.0f} records/s, without "
            f"transactions {alo[-1]:,.0f} records/s",
            flush=True,
        )
    e, a = statistics.median(eos), statistics.median(alo)
    print(
        f"copy of {args.records:,} records, median of {args.runs}: exactly once {e:,.0f} "
        f"records/s, without transactions {a:,.0f} records/s, ratio {e / a:.2f}"
    )


# ---------------------------------------------------------------- failover


async def _coordinator_of(cluster: LocalCluster, tid: str) -> int:
    async with grpc.aio.insecure_channel(cluster.bootstrap_servers[0]) as channel:
        stub = GroupServiceStub(channel)
        request = gpb.FindCoordinatorRequest(key_type=gpb.COORDINATOR_TYPE_TRANSACTION, keys=[tid])
        for _ in range(600):
            (found,) = (await stub.FindCoordinator(request, timeout=5)).coordinators
            if found.error_code == ErrorCode.NONE:
                return int(found.node_id)
            await asyncio.sleep(0.1)
    raise RuntimeError(f"no coordinator for {tid} within a minute")


async def _all_unfenced(cluster: LocalCluster) -> None:
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(1200):
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError("a broker did not come back within two minutes")


async def failover(cluster: LocalCluster, args: argparse.Namespace) -> None:
    await _ready(cluster, ["bench-failover"])
    times: list[float] = []
    for trial in range(args.trials):
        tid = f"bench-failover-{trial}"
        values = {f"t{trial}-{p}".encode() for p in range(PARTITIONS)}
        async with _producer(cluster, tid, request_timeout_ms=2000) as producer:
            await producer.init_transactions()
            producer.begin_transaction()
            for p, v in enumerate(sorted(values)):
                await producer.send("bench-failover", v, partition=p)
            await producer.flush()
            victim = await _coordinator_of(cluster, tid)
            cluster.kill(victim)
            killed = time.monotonic()
            await producer.commit_transaction()
        consumer = AsyncConsumer(
            bootstrap_servers=cluster.bootstrap_servers, isolation_level="read_committed"
        )
        try:
            consumer.assign(TopicPartition("bench-failover", p) for p in range(PARTITIONS))
            consumer.seek_to_beginning()
            seen: set[bytes] = set()
            while not values <= seen:
                seen.update(r.value or b"" for r in await consumer.poll(timeout_ms=200))
        finally:
            await consumer.close()
        took = time.monotonic() - killed
        times.append(took)
        print(f"failover trial {trial + 1}: coordinator broker {victim} killed; transaction complete after {took:.2f} s", flush=True)  # fmt: skip
        cluster.start(victim)
        await _all_unfenced(cluster)
    print(
        f"failover, {len(times)} trials: median {statistics.median(times):.2f} s, "
        f"max {max(times):.2f} s, min {min(times):.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("rate", "copy", "failover"))
    parser.add_argument("--seconds", type=float, default=5.0, help="rate: per measurement")
    parser.add_argument("--producers", type=int, default=4, help="rate: concurrent producers")
    parser.add_argument("--records", type=int, default=50_000, help="copy: source records")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20, help="failover")
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(
            Path(tmp), controllers=3, brokers=3, log_level="warning",
            controller_settings=CONTROLLER, broker_settings=BROKER,
        )  # fmt: skip
        cluster.prepare()
        cluster.start()
        try:
            print(f"command: {' '.join(sys.argv)}", flush=True)
            runner = {"rate": rate, "copy": copy, "failover": failover}[args.mode]
            asyncio.run(runner(cluster, args))
        finally:
            cluster.stop_all()


if __name__ == "__main__":
    main()
