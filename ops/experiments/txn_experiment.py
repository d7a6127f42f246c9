"""The transaction workload's place in ``raftka experiment`` (``--workload txn``): it creates the
workload's topics, runs :class:`~raftka.ops.experiments.txn_workload.TxnWorkload` beside the
queue workload under the same faults, and after healing drains the copier, checks the history
and writes ``txn-history.jsonl`` and the ``txn`` section of the report."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from raftka.client.types import TopicPartition
from raftka.common.rpc.controller_client import ControllerClient
from raftka.ops.experiments import cluster_setup as setup
from raftka.ops.experiments.config import ExperimentConfig
from raftka.ops.experiments.txn_history import write_attempts
from raftka.ops.experiments.txn_workload import (
    COPY_TOPIC,
    OUT_TOPIC,
    TxnWorkload,
    TxnWorkloadSettings,
)
from raftka.ops.local_cluster import LocalCluster


class TxnExperiment:
    def __init__(
        self, config: ExperimentConfig, workload: TxnWorkload, say: Callable[[str], None]
    ) -> None:
        self._config = config
        self.workload = workload
        self._say = say

    @classmethod
    async def create(
        cls,
        config: ExperimentConfig,
        cluster: LocalCluster,
        admin: ControllerClient,
        source_topic: str,
        clock: Callable[[], float],
        say: Callable[[str], None],
    ) -> TxnExperiment | None:
        """None unless the experiment runs the txn workload; else its topics are ready."""
        if not config.runs("txn"):
            return None
        for topic in (OUT_TOPIC, COPY_TOPIC):
            await setup.create_topic(
                admin,
                topic,
                partitions=config.partitions,
                replication_factor=config.replication_factor,
                min_insync_replicas=config.min_isr,
                unclean_election=config.unclean_election,
            )
            await setup.until(
                lambda t=topic: setup.partitions_healthy(admin, cluster, t, full_isr=True),
                f"topic {topic} ready",
                60,
            )
        settings = TxnWorkloadSettings(
            bootstrap_servers=cluster.bootstrap_servers,
            partitions=config.partitions,
            producers=config.txn_producers,
            transaction_timeout_ms=config.transaction_timeout_ms,
            request_timeout_ms=int(config.request_timeout_s * 1000),
        )
        return cls(config, TxnWorkload(settings, clock, source_topic), say)

    def start(self) -> None:
        self.workload.start()

    def stop_producers(self) -> None:
        self.workload.stop_producers()

    async def close(self) -> None:
        await self.workload.close()

    async def finish(self, source: Mapping[TopicPartition, Mapping[int, str]]) -> dict[str, Any]:
        """After healing: the copier copies the rest of the source, then the checks run."""
        timeout = self._config.recovery_timeout_s
        ends = {tp: max(log) + 1 for tp, log in source.items() if log}
        drained = await self.workload.drain_copier(ends, timeout)
        self._say(f"txn: copier drained={drained}; checking (after the transaction timeout)")
        report = await self.workload.check(source, timeout)
        write_attempts(self._config.out_dir / "txn-history.jsonl", self.workload.attempts)
        section = report.to_json()
        section["drained"] = drained
        section["valid"] = section["valid"] and drained
        return section

    @staticmethod
    def summary(section: Mapping[str, Any]) -> list[str]:
        lines = [
            f"txn: valid={section['valid']} committed {section['committed']:,} aborted "
            f"{section['aborted']:,} unknown {section['unknown']:,}; read {section['read']:,} "
            f"(observed during the run {section['observed']:,}); "
            f"{section['instances']} producer instances; copied {section['copied']:,} "
            f"({section['copier_restarts']} copier restarts); anomalies "
            f"{len(section['anomalies'])}"
        ]
        lines += [f"  {a['kind']}: {a['explanation']}" for a in section["anomalies"][:10]]
        return lines
