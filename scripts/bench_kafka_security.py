"""What SASL_SSL costs on the Kafka listener: confluent-kafka over PLAINTEXT vs SASL_SSL.

    .venv/bin/python scripts/bench_kafka_security.py --records 30000 --runs 3

Starts two clusters of 1 controller + 3 brokers on 127.0.0.1: one plaintext, one with TLS
(the Kafka listeners SASL_SSL with SCRAM-SHA-512, the authorizer on, the client the super
user ``User:admin`` as ``raftka up --tls`` sets it up). Per run and mode (interleaved): a topic
of 3 partitions, RF 3, min.insync.replicas 2; ``--records`` records of 1 KiB produced
idempotently with acks=all as fast as confluent-kafka goes, then consumed from the start
(scripts/bench_kafka.py's clients). Then the cost of a login: ``--logins`` fresh connections
that each authenticate (TLS handshake + SCRAM exchange, or nothing) and fetch metadata.
Prints each run, and medians.
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

from raftka.client.admin import AsyncAdmin
from raftka.ops.kafka_access import (
    TLS_BROKER_SETTINGS,
    kafka_client_settings,
    make_password,
    password_file,
    set_kafka_password,
)
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm
from scripts.bench_kafka import PARTITIONS, _line, confluent_consume, confluent_produce


def settings_of(cluster: LocalCluster) -> dict[str, Any]:
    settings: dict[str, Any] = dict(kafka_client_settings(cluster))
    if cluster.tls:
        settings["sasl.password"] = password_file(cluster).read_text().splitlines()[0]
    return settings


def logins(settings: dict[str, Any], count: int) -> dict[str, float]:
    """Fresh clients that each connect, authenticate and get metadata: ms per login."""
    from confluent_kafka.admin import AdminClient

    started = time.monotonic()
    for _ in range(count):
        admin = AdminClient(settings)
        admin.list_topics(timeout=10)
        del admin
    return {"ms/login": (time.monotonic() - started) / count * 1000}


async def prepare(cluster: LocalCluster, runs: int) -> None:
    security = cluster.client_security() if cluster.tls else None
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60, security=security) as admin:
        for _ in range(600):
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        for run in range(runs):
            await admin.create_topic(
                f"bench-{run}", PARTITIONS, 3, configs={"min.insync.replicas": "2"}
            )
    if cluster.tls:
        await set_kafka_password(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--logins", type=int, default=50)
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        clusters = {
            "plaintext": LocalCluster(
                Path(tmp) / "plain", controllers=1, brokers=3, log_level="warning", kafka=True
            ),
            "sasl_ssl": LocalCluster(
                Path(tmp) / "tls",
                controllers=1,
                brokers=3,
                log_level="warning",
                kafka=True,
                tls=True,
                broker_settings=TLS_BROKER_SETTINGS,
            ),
        }
        try:
            for cluster in clusters.values():
                cluster.prepare()
                if cluster.tls:
                    make_password(cluster)
                cluster.start()
            for cluster in clusters.values():
                asyncio.run(prepare(cluster, args.runs))
            settings = {mode: settings_of(c) for mode, c in clusters.items()}
            print(f"command: {' '.join(sys.argv)}")
            results: dict[str, list[dict[str, float]]] = {}
            for run in range(args.runs):
                for mode in clusters:
                    s = settings[mode]
                    servers = s.pop("bootstrap.servers")
                    figures = {
                        f"{mode} produce": confluent_produce(
                            servers, f"bench-{run}", args.records, args.record_size, s
                        ),
                        f"{mode} consume": confluent_consume(
                            servers, f"bench-{run}", args.records, s
                        ),
                        f"{mode} login": logins({**s, "bootstrap.servers": servers}, args.logins),
                    }
                    s["bootstrap.servers"] = servers
                    for case, found in figures.items():
                        results.setdefault(case, []).append(found)
                        print(f"run {run + 1} {case:>18}: {_line(found)}", flush=True)
            print(
                f"\nmedians of {args.runs} runs, {args.records} records of {args.record_size} B, "
                "idempotent, acks=all, 3 brokers, RF 3, min.insync.replicas 2:"
            )
            for case, runs in sorted(results.items()):
                med = {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}
                print(f"  {case:>18}: {_line(med)}")
        finally:
            for cluster in clusters.values():
                cluster.stop_all()


if __name__ == "__main__":
    main()
