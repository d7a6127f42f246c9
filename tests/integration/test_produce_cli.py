"""`raftka produce` and `raftka perf produce` against real brokers, read back with
`raftka consume`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from raftka.client.producer.partitioner import partition_for_key
from raftka.ops.local_cluster import LocalCluster
from tests.integration.support.brokers import wait_partition_leaders
from tests.integration.support.quorum import client_for, create_topic

pytestmark = pytest.mark.integration


def raftka(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "raftka.client.cli", *args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        env={"PATH": "/usr/bin:/bin"},
    )


def new_topic(cluster: LocalCluster, name: str, partitions: int) -> None:
    async def main() -> None:
        async with client_for(cluster) as client:
            await create_topic(client, name, partitions=partitions, rf=3)
        await wait_partition_leaders(cluster, name, partitions)

    asyncio.run(main())


def test_produce_lines_with_keys_and_read_them_back(
    broker_cluster: LocalCluster, tmp_path: Path
) -> None:
    new_topic(broker_cluster, "p-cli", 3)
    servers = ",".join(broker_cluster.bootstrap_servers)
    lines = [f"user{i % 5}:event {i}" for i in range(30)]
    produced = raftka(
        "produce",
        "p-cli",
        "--bootstrap-server",
        servers,
        "--key-separator",
        ":",
        "--compression-type",
        "lz4",
        cwd=tmp_path,
        stdin="\n".join(lines).encode() + b"\n",
    )
    assert produced.returncode == 0, produced.stderr
    assert "produced 30 records to p-cli" in produced.stderr
    for partition in range(3):
        consumed = raftka(
            "consume",
            "p-cli",
            "--bootstrap-server",
            servers,
            "--partition",
            str(partition),
            "--from-beginning",
            "--format",
            "kv",
            "--key-separator",
            ":",
            "--timeout-ms",
            "1500",
            cwd=tmp_path,
        )
        assert consumed.returncode == 0, consumed.stderr
        expected = [
            line for line in lines if partition_for_key(line.split(":")[0].encode(), 3) == partition
        ]
        assert consumed.stdout.splitlines() == expected, f"partition {partition}"
    missing_sep = raftka(
        "produce",
        "p-cli",
        "--bootstrap-server",
        servers,
        "--key-separator",
        "|",
        cwd=tmp_path,
        stdin=b"no separator here\n",
    )
    assert missing_sep.returncode == 1 and "has no key separator '|'" in missing_sep.stderr


def test_perf_produce_reports_rates_and_latency(
    broker_cluster: LocalCluster, tmp_path: Path
) -> None:
    new_topic(broker_cluster, "p-perf", 2)
    servers = ",".join(broker_cluster.bootstrap_servers)
    perf = raftka(
        "perf",
        "produce",
        "--topic",
        "p-perf",
        "--num-records",
        "3000",
        "--record-size",
        "200",
        "--bootstrap-server",
        servers,
        "--reporting-interval-ms",
        "200",
        cwd=tmp_path,
    )
    assert perf.returncode == 0, perf.stderr
    assert "records:      3,000" in perf.stdout and "bytes:        600,000" in perf.stdout
    assert "latency: p50" in perf.stdout and "p99" in perf.stdout
    consumed = raftka(
        "perf",
        "consume",
        "--topic",
        "p-perf",
        "--messages",
        "3000",
        "--bootstrap-server",
        servers,
        cwd=tmp_path,
    )
    assert consumed.returncode == 0 and "records:      3,000" in consumed.stdout, consumed.stderr
    missing = raftka(
        "perf",
        "produce",
        "--topic",
        "nope",
        "--num-records",
        "1",
        "--bootstrap-server",
        servers,
        "--producer-property",
        "max.block.ms=500",
        cwd=tmp_path,
    )
    assert missing.returncode == 1 and "raftka topics create nope" in missing.stderr
