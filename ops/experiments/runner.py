"""Runs one failover experiment from start to report (``raftka experiment``).

1. Start a cluster with fault injection on (each node in a network namespace with ``netns``),
   create the topic, wait until every partition has a leader with a full ISR.
2. Run the workload (``workload``), the metadata observer (``observer``) and the fault
   schedule (``nemesis``) for ``duration_s``, printing progress.
3. Stop the workload, heal everything (restart, resume, clear the network), wait until every
   broker is back and every partition has a full ISR, then read every partition in full.
4. Check the history (``checker``), and write the history, the JSON report and the timeline
   PNG into ``out_dir``.

Times everywhere are seconds since the workload started (one monotonic clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.experiments import cluster_setup as setup
from raftka.ops.experiments.checker import check
from raftka.ops.experiments.config import ExperimentConfig
from raftka.ops.experiments.group_workload import (
    GroupWorkload,
    final_logs,
    group_report,
    member_schedule,
)
from raftka.ops.experiments.nemesis import InProcessNetwork, Nemesis, NetworkFaults
from raftka.ops.experiments.netns import NetnsNetwork, host_ipv4_addresses
from raftka.ops.experiments.observer import MetadataObserver, dump_samples
from raftka.ops.experiments.producer_sender import ProducerSender
from raftka.ops.experiments.report import build_report, summary_lines, write_report
from raftka.ops.experiments.rpc_clients import RpcClients, RpcReader
from raftka.ops.experiments.schedule import Schedule
from raftka.ops.experiments.timeline import TimelineUnavailableError, draw_timeline
from raftka.ops.experiments.txn_experiment import TxnExperiment
from raftka.ops.experiments.workload import Workload
from raftka.ops.local_cluster import LocalCluster

TOPIC = "experiment"


@dataclass
class ExperimentOutcome:
    report: dict[str, Any]
    report_path: Path
    history_path: Path
    timeline_path: Path | None

    @property
    def clean(self) -> bool:
        """No anomaly, every partition checked, the cluster recovered."""
        r = self.report
        return (
            bool(r["valid"])
            and not r["check"]["unchecked_partitions"]
            and r["recovery"]["recovered"]
            and r.get("group", {}).get("valid", True)
            and r.get("txn", {}).get("valid", True)
        )


class Clock:
    def __init__(self) -> None:
        self.zero = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.zero


async def run_experiment(
    config: ExperimentConfig, say: Callable[[str], None] = print, *, command: str = ""
) -> ExperimentOutcome:
    schedule = config.schedule()  # bad schedule files fail before anything starts
    config.out_dir.mkdir(parents=True, exist_ok=True)
    netns: NetnsNetwork | None = None
    cluster: LocalCluster | None = None
    try:
        if config.netns:
            ids = list(range(1, config.controllers + config.brokers + 1))
            netns = NetnsNetwork(ids, subnet=config.netns_subnet)
            netns.setup(host_ipv4_addresses())
            say(f"netns: {len(ids)} namespaces rkx{netns.run_id}-*, subnet {netns.subnet}")
        cluster = setup.make_cluster(
            config.out_dir / "cluster",
            controllers=config.controllers,
            brokers=config.brokers,
            controller_settings=config.controller_settings,
            broker_settings=config.broker_settings,
            netns=netns,
            planted_bugs=config.planted_bugs,
            tls=config.tls,
        )
        cluster.prepare()
        if config.tls:
            say(f"tls: CA and certificates in {cluster.tls_dir}; every node listens and calls "
                "with TLS and mTLS, ACLs on; the experiment's clients are User:admin")  # fmt: skip
        cluster.start()
        network: NetworkFaults = (
            netns
            if netns is not None
            else InProcessNetwork(
                {n: cluster.node(n).address for n in [*cluster.nodes, *cluster.brokers]}
            )
        )
        with setup.clients_secured(cluster):
            return await _run(config, schedule, cluster, network, say, command)
    finally:
        if cluster is not None:
            cluster.stop_all(timeout_s=10)
        if netns is not None:
            leftovers = netns.cleanup()
            if leftovers:
                say(f"netns: could not delete {leftovers}")


async def _run(
    config: ExperimentConfig,
    schedule: Schedule,
    cluster: LocalCluster,
    network: NetworkFaults,
    say: Callable[[str], None],
    command: str,
) -> ExperimentOutcome:
    async with ControllerClient(cluster.bootstrap, timeout_s=5.0, attempt_timeout_s=1.0) as admin:
        say(
            f"starting {config.controllers} controllers and {config.brokers} brokers in {config.out_dir / 'cluster'}"
        )
        await setup.until(
            lambda: setup.brokers_unfenced(admin, config.brokers), "brokers unfenced", 60
        )
        await setup.create_topic(
            admin,
            TOPIC,
            partitions=config.partitions,
            replication_factor=config.replication_factor,
            min_insync_replicas=config.min_isr,
            unclean_election=config.unclean_election,
        )
        await setup.until(
            lambda: setup.partitions_healthy(admin, cluster, TOPIC, full_isr=True),
            "topic ready",
            60,
        )
        clock = Clock()
        txn = await TxnExperiment.create(config, cluster, admin, TOPIC, clock, say)
        clients = RpcClients(
            cluster.bootstrap_servers, TOPIC, request_timeout_s=config.request_timeout_s
        )
        workload = Workload(
            TOPIC,
            config.partitions,
            ProducerSender(
                cluster.bootstrap_servers,
                TOPIC,
                acks=config.acks,
                request_timeout_s=config.request_timeout_s,
            ),
            RpcReader(clients),
            clock,
            producers_per_partition=config.producers_per_partition,
            rate=config.rate,
        )
        observer = MetadataObserver(
            cluster.bootstrap,
            TOPIC,
            clock,
            controller_ids=list(cluster.nodes),
            broker_ids=list(cluster.brokers),
        )
        nemesis = Nemesis(
            cluster, network, clock, log=lambda line: say(f"[{clock():7.1f}s] {line}")
        )
        group = _group_workload(config, cluster, clock, say)
        await observer.sample()
        say(f"workload: {config.rate:g} sends/s, acks={'all' if config.acks == -1 else config.acks}, "
            f"{len(schedule.faults)} faults scheduled over {config.duration_s:g}s")  # fmt: skip
        tasks = [
            asyncio.create_task(workload.run()),
            asyncio.create_task(observer.run()),
            asyncio.create_task(_progress(workload, nemesis, observer, clock, config, say)),
        ]
        group_result: dict[str, Any] | None = None
        txn_result: dict[str, Any] | None = None
        if txn is not None:
            txn.start()
        if group is not None:
            group.start()
            member_faults = member_schedule(
                config.seed,
                members=config.group_members,
                duration=config.duration_s,
                interval=config.fault_interval_s,
                fault_duration=config.fault_duration_s,
            )
            tasks.append(asyncio.create_task(group.run_faults(member_faults, config.duration_s)))
        try:
            await _drive(schedule, nemesis, observer, clock, config.duration_s)
            workload.stop()
            if txn is not None:
                txn.stop_producers()
            workload_end = clock()
            await asyncio.wait({tasks[0]}, timeout=config.request_timeout_s * 3 + 5)
            say(f"[{clock():7.1f}s] workload stopped; healing every fault")
            await nemesis.heal_all()
            await _heal_everything(cluster, network)
            recovered = True
            try:
                await setup.until(
                    lambda: setup.brokers_unfenced(admin, config.brokers),
                    "brokers back",
                    config.recovery_timeout_s,
                )
                await setup.until(
                    lambda: setup.partitions_healthy(admin, cluster, TOPIC, full_isr=True),
                    "every partition with a full ISR",
                    config.recovery_timeout_s,
                )
            except setup.ExperimentSetupError as e:
                recovered = False
                say(f"[{clock():7.1f}s] not recovered: {e.message}")
            recovered_at = clock()
            say(f"[{recovered_at:7.1f}s] recovered={recovered}; final reads")
            failures = await workload.final_read(attempts=5)
            for failure in failures:
                say(f"  {failure}")
            if group is not None:
                group_result = await _finish_group(group, workload, config, clock, say)
            if txn is not None:
                txn_result = await txn.finish(final_logs(workload.history))
        finally:
            if txn is not None:
                await txn.close()
            if group is not None:
                group.stop()
            workload.stop()
            observer.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await clients.close()
            await observer.close()
            await network.close()
    return _finish(
        config,
        schedule,
        workload,
        observer,
        nemesis,
        workload_end,
        recovered,
        recovered_at,
        say,
        command,
        group_result,
        txn_result,
    )


def _group_workload(
    config: ExperimentConfig, cluster: LocalCluster, clock: Clock, say: Callable[[str], None]
) -> GroupWorkload | None:
    if not config.runs("group"):
        return None
    return GroupWorkload(
        config.out_dir / "members",
        cluster.bootstrap_servers,
        TOPIC,
        members=config.group_members,
        session_timeout_ms=config.member_session_timeout_ms,
        auto_commit_interval_ms=config.auto_commit_interval_ms,
        clock=clock,
        log=lambda line: say(f"[{clock():7.1f}s] {line}"),
        consumer_properties=setup.consumer_properties(cluster),
    )


async def _finish_group(
    group: GroupWorkload,
    workload: Workload,
    config: ExperimentConfig,
    clock: Clock,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Let the group read to the end of every partition, stop the members (they commit and
    leave), and check what they read against the final reads."""
    logs = final_logs(workload.history)
    drained = await group.drain(logs, config.recovery_timeout_s)
    say(f"[{clock():7.1f}s] group drained={drained}; stopping members")
    group.stop()
    result = group.check(logs)
    return group_report(result, drained, group.struck)


async def _drive(
    schedule: Schedule, nemesis: Nemesis, observer: MetadataObserver, clock: Clock, duration: float
) -> None:
    """Strike each fault at its start and heal it at its end; return at ``duration``."""
    heals: list[asyncio.Task[None]] = []

    async def heal_later(record: Any, at: float) -> None:
        await asyncio.sleep(max(0.0, at - clock()))
        await nemesis.heal(record)

    try:
        for fault in schedule.faults:
            if fault.start >= duration:
                break
            await asyncio.sleep(max(0.0, fault.start - clock()))
            record = await nemesis.strike(fault, observer.topology())
            if record.active:
                heals.append(asyncio.create_task(heal_later(record, min(fault.end, duration))))
        await asyncio.sleep(max(0.0, duration - clock()))
        await asyncio.gather(*heals)
    finally:
        for task in heals:
            task.cancel()


async def _heal_everything(cluster: LocalCluster, network: NetworkFaults) -> None:
    setup.heal_processes(cluster)
    for node_id in [*cluster.nodes, *cluster.brokers]:
        with contextlib.suppress(Exception):
            await network.heal(node_id)


async def _progress(
    workload: Workload,
    nemesis: Nemesis,
    observer: MetadataObserver,
    clock: Clock,
    config: ExperimentConfig,
    say: Callable[[str], None],
) -> None:
    while True:
        await asyncio.sleep(config.progress_interval_s)
        t, tally = clock(), workload.tally
        active = ", ".join(r.label() for r in nemesis.active()) or "none"
        topology = observer.topology()
        leaders = " ".join(f"p{p}={s.leader}" for p, s in sorted(topology.partitions.items()))
        say(
            f"[{t:7.1f}s] acked {tally.acknowledged:,} failed {tally.failed:,} "
            f"unknown {tally.indeterminate:,} read {tally.records_read:,} | leaders {leaders} "
            f"controller={topology.controller_leader} | faults: {active}"
        )


def _finish(
    config: ExperimentConfig,
    schedule: Schedule,
    workload: Workload,
    observer: MetadataObserver,
    nemesis: Nemesis,
    workload_end: float,
    recovered: bool,
    recovered_at: float,
    say: Callable[[str], None],
    command: str,
    group_result: dict[str, Any] | None = None,
    txn_result: dict[str, Any] | None = None,
) -> ExperimentOutcome:
    out = config.out_dir
    history_path, report_path = out / "history.jsonl", out / "report.json"
    workload.history.dump(history_path)
    dump_samples(observer.samples, out / "metadata.jsonl")
    result = check(workload.history)
    report = build_report(
        history=workload.history,
        result=result,
        topic=TOPIC,
        partitions=config.partitions,
        struck=nemesis.struck,
        samples=observer.samples,
        changes=observer.changes,
        workload_start=0.0,
        workload_end=workload_end,
        threshold_s=config.unavailability_threshold_s,
        extra={
            "command": command,
            "title": config.title(schedule),
            "config": config.to_json(),
            "schedule": schedule.to_json(),
            "recovery": {
                "recovered": recovered,
                "workload_end": round(workload_end, 3),
                "recovered_at": round(recovered_at, 3),
            },
            "files": {
                "history": history_path.name,
                "timeline": "timeline.png",
                "cluster": "cluster/",
            },
        },
    )
    timeline_path: Path | None = out / "timeline.png"
    try:
        assert timeline_path is not None
        draw_timeline(
            timeline_path,
            workload.history,
            report,
            observer.samples,
            title=config.title(schedule),
        )
    except TimelineUnavailableError as e:
        say(f"no timeline: {e}")
        timeline_path = None
        report["files"]["timeline"] = None
    if group_result is not None:
        report["group"] = group_result
    if txn_result is not None:
        report["txn"] = txn_result
    write_report(report_path, report)
    for line in summary_lines(report):
        say(line)
    if group_result is not None:
        g = group_result
        say(
            f"group: valid={g['valid']} drained={g['drained']} consumed {g['consumed']:,} "
            f"(re-read {g['re_read']:,}) in {g['sessions']} ownerships; "
            f"{len(g['member_faults'])} member faults; anomalies {len(g['anomalies'])}"
        )
        for a in g["anomalies"][:10]:
            say(f"  {a['kind']}: {a['explanation']}")
    if txn_result is not None:
        for line in TxnExperiment.summary(txn_result):
            say(line)
    say(f"report {report_path}")
    if timeline_path is not None:
        say(f"timeline {timeline_path}")
    return ExperimentOutcome(report, report_path, history_path, timeline_path)
