"""Client figures with `raftka perf produce` and `raftka perf consume`, on one local cluster.

    .venv/bin/python scripts/bench_client.py --records 50000 --runs 3

Starts 3 controllers + 3 brokers (default settings) on 127.0.0.1, creates one topic per case
(3 partitions, replication factor 3, min.insync.replicas 2) and runs, for each case, `raftka
perf produce` with 1 KiB records `--runs` times, then `raftka perf consume` of what was written.
Cases: acks=all, acks=1, acks=all with lz4, acks=all with zstd (all idempotent but acks=1).
Prints each run's summary line and, per case, the median of the runs; runs of the cases are
interleaved so that machine noise spreads over all of them. Everything is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from raftka.client.admin import AsyncAdmin
from raftka.ops.local_cluster import LocalCluster, stop_clusters_on_sigterm

CASES = {
    "acks=all": ["--acks", "all"],
    "acks=1": ["--acks", "1"],
    "acks=all lz4": ["--acks", "all", "--compression-type", "lz4"],
    "acks=all zstd": ["--acks", "all", "--compression-type", "zstd"],
}
FIGURES = {
    "records/s": re.compile(r"records/s:\s+([\d,]+)"),
    "MB/s": re.compile(r"MB/s:\s+([\d.]+)"),
    "p50 ms": re.compile(r"p50 ([\d.]+) ms"),
    "p99 ms": re.compile(r"p99 ([\d.]+) ms"),
}


def perf(*args: str, servers: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", "perf", *args, "--bootstrap-server", servers],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"perf {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    figures = {}
    for name, pattern in FIGURES.items():
        m = pattern.search(result.stdout)
        if m:
            figures[name] = float(m.group(1).replace(",", ""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--record-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stop_clusters_on_sigterm()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = LocalCluster(Path(tmp), controllers=3, brokers=3, log_level="warning")
        cluster.prepare()
        cluster.start()
        try:
            asyncio.run(_topics(cluster, len(CASES) * args.runs))
            servers = ",".join(cluster.bootstrap_servers)
            results: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
            consumed: list[dict[str, float]] = []
            print(f"command: {' '.join(sys.argv)}")
            for run in range(args.runs):
                for i, (case, flags) in enumerate(CASES.items()):
                    topic = f"bench-{run}-{i}"
                    figures = perf(
                        "produce", "--topic", topic, "--num-records", str(args.records),
                        "--record-size", str(args.record_size), *flags, servers=servers,
                    )  # fmt: skip
                    results[case].append(figures)
                    print(f"run {run + 1} {case:>14}: {_line(figures)}", flush=True)
                    if case == "acks=all":
                        got = perf(
                            "consume",
                            "--topic",
                            topic,
                            "--messages",
                            str(args.records),
                            servers=servers,
                        )
                        consumed.append(got)
                        print(f"run {run + 1} {'consume':>14}: {_line(got)}", flush=True)
            print(f"\nmedians of {args.runs} runs, {args.records} records of {args.record_size} B, "
                  "3 brokers, RF 3, min.insync.replicas 2:")  # fmt: skip
            for case, runs in {**results, "consume": consumed}.items():
                med = {k: statistics.median(r[k] for r in runs if k in r) for k in runs[0]}
                print(f"  {case:>14}: {_line(med)}")
        finally:
            cluster.stop_all()


def _line(figures: dict[str, float]) -> str:
    return "  ".join(
        f"{name} {value:,.1f}" if name != "records/s" else f"{value:,.0f} records/s"
        for name, value in figures.items()
    )


async def _topics(cluster: LocalCluster, count: int) -> None:
    async with AsyncAdmin(cluster.bootstrap, timeout_s=60) as admin:
        for _ in range(600):  # every broker registered and unfenced, within a minute
            brokers = (await admin.describe_cluster()).brokers
            if len([b for b in brokers if not b.fenced]) == len(cluster.brokers):
                break
            await asyncio.sleep(0.1)
        for run in range(count // len(CASES)):
            for i in range(len(CASES)):
                await admin.create_topic(
                    f"bench-{run}-{i}", 3, 3, configs={"min.insync.replicas": "2"}
                )


if __name__ == "__main__":
    main()
