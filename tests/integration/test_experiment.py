"""`raftka experiment` end to end against real clusters: a short seeded run of kill, pause and
partition faults under acks=all loses and duplicates nothing; acks=1 with unclean election and
an isolated leader does lose acknowledged writes, and the checker says so; the same kind of run
with every node in its own network namespace (as root on Linux), also with TLS on the nodes'
real addresses; and a longer run (--long).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import tomllib
from pathlib import Path

import matplotlib.image
import pytest
from cryptography import x509

from raftka.common.rpc.channels import (
    PlaintextRefusedError,
    check_plaintext_allowed,
    is_loopback_address,
)
from raftka.common.security.settings import SecuritySettings
from raftka.ops.experiments.config import ExperimentConfig
from raftka.ops.experiments.history import History, OpKind
from raftka.ops.experiments.netns import requirements_missing
from raftka.ops.experiments.runner import ExperimentOutcome, run_experiment
from raftka.ops.experiments.schedule import FaultKind

pytestmark = pytest.mark.integration

MIXED = (FaultKind.KILL, FaultKind.PAUSE, FaultKind.PARTITION)


def run(config: ExperimentConfig) -> ExperimentOutcome:
    return asyncio.run(run_experiment(config, lambda line: print(line, flush=True)))


def assert_nothing_lost(outcome: ExperimentOutcome) -> None:
    report = outcome.report
    figures = report["figures"]
    assert figures["lost"] == 0, report["check"]["anomalies"]
    assert figures["duplicated"] == 0, report["check"]["anomalies"]
    assert report["valid"], report["check"]["anomalies"]
    assert report["recovery"]["recovered"]
    assert report["check"]["unchecked_partitions"] == []
    assert outcome.clean, {
        part: {k: report[part].get(k) for k in ("valid", "drained", "anomalies")}
        for part in ("group", "txn")
        if part in report
    }


def test_short_seeded_experiment_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """The queue checks, and the group and transaction workloads beside them: members killed
    and paused while the brokers (the coordinators among them) are, nothing skipped, no double
    owner; transactions neither torn, lost, duplicated nor read when aborted; the copy exactly
    once."""
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=75,
        seed=2,
        fault_interval_s=8,
        faults=MIXED,
        rate=150,
        progress_interval_s=15,
        workload="all",
        transaction_timeout_ms=5000,
    )
    assert config.schedule().kinds == set(MIXED), "seed 2 draws every kind"
    outcome = run(config)
    assert_nothing_lost(outcome)
    report = outcome.report
    assert report["figures"]["acknowledged"] > 3000
    struck = [f for f in report["faults"] if f["node"] is not None]
    assert {f["kind"] for f in struck} == {"kill", "pause", "partition"}
    assert len(struck) >= 6, [f["skipped"] for f in report["faults"]]
    assert any(f["time_to_new_leader_s"] is not None for f in struck), "some leader moved"
    history = History.load(outcome.history_path)
    kinds = {op.kind for op in history}
    assert kinds == {OpKind.SEND, OpKind.POLL, OpKind.FINAL_READ}
    assert outcome.timeline_path is not None
    assert matplotlib.image.imread(str(outcome.timeline_path)).shape[:2] == (1000, 1500)
    group = report["group"]
    assert group["valid"] and group["drained"], group["anomalies"]
    assert {f["kind"] for f in group["member_faults"]} == {"kill", "pause"}
    assert group["consumed"] >= report["figures"]["acknowledged"]
    txn = report["txn"]
    assert txn["valid"] and txn["drained"], txn["anomalies"]
    assert txn["committed"] > 50 and txn["aborted"] > 5, txn
    assert txn["copied"] >= report["figures"]["acknowledged"]


def test_the_transaction_checker_catches_a_planted_bug(tmp_path: Path) -> None:
    """With the last stable offset planted to ignore open transactions, read_committed
    consumers read transactions that later abort: the checker reports aborted reads."""
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=12,
        fault_interval_s=60,
        rate=50,
        workload="txn",
        transaction_timeout_ms=3000,
        planted_bugs=("lso_ignores_open_transactions",),
    )
    outcome = run(config)
    txn = outcome.report["txn"]
    kinds = {a["kind"] for a in txn["anomalies"]}
    assert "aborted_read" in kinds, txn
    assert not txn["valid"] and not outcome.clean
    assert outcome.report["valid"], "the queue checks still pass: only transactions broke"


def write_isolate_leader_schedule(path: Path) -> Path:
    path.write_text(
        """
# Cut the leader of partition 0 off from every other node for 8 s. It keeps accepting
# acks=1 writes it cannot replicate; it shrinks the ISR to itself (1 s lag), is fenced
# (2.5 s session), and a stale follower is elected uncleanly.
[[fault]]
kind = "partition"
target = "partition-leader"
partition = 0
start = 4
duration = 8
"""
    )
    return path


def test_acks_1_with_unclean_election_loses_writes_and_the_checker_finds_them(
    tmp_path: Path,
) -> None:
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=20,
        schedule_file=write_isolate_leader_schedule(tmp_path / "isolate.toml"),
        acks=1,
        unclean_election=True,
        partitions=1,
        rate=100,
        broker_settings={"replica_lag_time_max_ms": 1000},
        # What this run checks is the loss; the deposed leader, whose log diverged below its
        # old high watermark, does not rejoin the ISR within the default 120 s recovery wait
        # (a known gap, see the issue-12 note), so do not spend two minutes waiting for it.
        recovery_timeout_s=6,
    )
    outcome = run(config)
    report = outcome.report
    assert report["config"]["min_insync_replicas"] == 1
    assert report["figures"]["lost"] > 0, "the isolated leader's acks=1 writes must be lost"
    assert report["check"]["anomaly_counts"]["lost_write"] > 0
    assert not outcome.clean
    (fault,) = report["faults"]
    assert fault["kind"] == "partition" and fault["led_partitions"] == [0]
    assert fault["time_to_new_leader_s"] is not None, "a stale follower took over"


@pytest.mark.skipif(requirements_missing() is not None, reason=f"--netns: {requirements_missing()}")
def test_netns_experiment_cuts_the_wire_and_loses_nothing(tmp_path: Path) -> None:
    schedule = tmp_path / "netns.toml"
    schedule.write_text(
        """
[[fault]]
kind = "partition"
target = "partition-leader"
partition = 0
start = 5
duration = 6

[[fault]]
kind = "kill"
target = "follower"
partition = 1
start = 12
duration = 4
"""
    )
    before, links_before = _namespaces(), _links()
    subnet = f"10.213.{100 + os.getpid() % 100}.0/24"
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=20,
        schedule_file=schedule,
        netns=True,
        netns_subnet=subnet,
        rate=120,
    )
    outcome = run(config)
    assert_nothing_lost(outcome)
    partition, kill = outcome.report["faults"]
    assert partition["node"] is not None and kill["node"] is not None
    assert partition["time_to_new_leader_s"] is not None, (
        "a leader cut off on the wire for 6 s is fenced and replaced"
    )
    assert _namespaces() == before, "every namespace the experiment made is gone"
    assert _links() == links_before, "every veth the experiment made is gone"
    addresses = subprocess.run(
        ["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True
    )
    assert subnet.rsplit(".", 1)[0] + "." not in addresses.stdout


@pytest.mark.skipif(requirements_missing() is not None, reason=f"--netns: {requirements_missing()}")
def test_netns_experiment_with_tls_on_real_addresses_loses_nothing(tmp_path: Path) -> None:
    """Every node in a namespace of its own, listening on its namespace address with TLS
    and mTLS (where plaintext is refused), certificates carrying those addresses; the
    experiment's clients over TLS. A killed follower is restarted and catches up; the history
    checks."""
    schedule = tmp_path / "kill.toml"
    schedule.write_text(
        """
[[fault]]
kind = "kill"
target = "follower"
partition = 0
start = 4
duration = 4
"""
    )
    before = _namespaces()
    subnet = f"10.213.{200 + os.getpid() % 50}.0/24"
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=14,
        schedule_file=schedule,
        netns=True,
        netns_subnet=subnet,
        tls=True,
        rate=100,
    )
    outcome = run(config)
    assert_nothing_lost(outcome)
    assert outcome.report["figures"]["acknowledged"] > 500
    (kill,) = outcome.report["faults"]
    assert kill["kind"] == "kill" and kill["node"] is not None
    assert outcome.report["config"]["tls"] is True
    network = ipaddress.ip_network(subnet)
    configs = sorted((tmp_path / "out" / "cluster").glob("*/node.toml"))
    assert len(configs) == 6
    for path in configs:
        node = tomllib.loads(path.read_text())
        security = node["security"]
        assert "allow_plaintext" not in security
        if "broker" in node:
            address = node["broker"]["listen"]
        else:
            voter = next(v for v in node["controller"]["voters"].split(",")
                         if v.startswith(f"{node['node_id']}@"))  # fmt: skip
            address = voter.split("@", 1)[1]
        host = address.rsplit(":", 1)[0]
        assert ipaddress.ip_address(host) in network and not is_loopback_address(address)
        with pytest.raises(PlaintextRefusedError):  # so only TLS let the node listen there
            check_plaintext_allowed(address, SecuritySettings())
        cert = x509.load_pem_x509_certificate(Path(security["tls_cert_file"]).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address(host) in sans.get_values_for_type(x509.IPAddress)
    assert _namespaces() == before, "every namespace the experiment made is gone"


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip() for line in out.splitlines() if ":" in line}


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


@pytest.mark.slow
def test_five_minute_mixed_fault_run_loses_nothing(tmp_path: Path) -> None:
    config = ExperimentConfig(
        out_dir=tmp_path / "out",
        duration_s=300,
        seed=11,
        fault_interval_s=10,
        faults=MIXED,
        progress_interval_s=30,
    )
    outcome = run(config)
    assert_nothing_lost(outcome)
    assert len([f for f in outcome.report["faults"] if f["node"] is not None]) >= 20
