"""The metric catalogue cannot rot: every metric the Grafana dashboard queries and every
``raftka_*`` name docs/operations.md mentions exists in the code, and the docs list every
metric the code declares (the MetricSpecs each metrics module exports)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from raftka.broker.metrics import BROKER_METRICS
from raftka.client.producer.metrics import PRODUCER_METRICS
from raftka.common.metrics.rpc import RPC_METRICS
from raftka.common.metrics.spec import sample_names
from raftka.controller.metrics import CONTROLLER_METRICS

ROOT = Path(__file__).resolve().parents[2]
SPECS = (*RPC_METRICS, *CONTROLLER_METRICS, *BROKER_METRICS, *PRODUCER_METRICS)
NAME = re.compile(r"\braftka_[a-z0-9_]*[a-z0-9]")


def _exprs(panels: list[dict[str, object]]) -> list[str]:
    out: list[str] = []
    for panel in panels:
        out += [str(t["expr"]) for t in panel.get("targets", [])]  # type: ignore[attr-defined]
        out += _exprs(panel.get("panels", []))  # type: ignore[arg-type]
    return out


def test_metric_names_are_unique() -> None:
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))


def test_every_metric_the_dashboard_queries_exists() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/raftka-overview.json").read_text())
    exprs = _exprs(dashboard["panels"])
    assert len(exprs) >= 15, "the dashboard lost its panels"
    queried = {name for e in exprs for name in NAME.findall(e)}
    assert queried, "no raftka_ metric found in the dashboard"
    unknown = queried - sample_names(SPECS)
    assert not unknown, f"the dashboard queries metrics the code does not have: {sorted(unknown)}"
    for needed in (
        "raftka_broker_topic_bytes_in_total",
        "raftka_rpc_request_duration_seconds_bucket",
        "raftka_broker_under_replicated_partitions",
        "raftka_controller_offline_partitions",
        "raftka_controller_active",
        "raftka_controller_raft_term",
        "raftka_controller_raft_commit_lag",
    ):
        assert needed in queried, f"the overview should show {needed}"


def test_the_docs_list_every_metric_and_only_real_ones() -> None:
    text = (ROOT / "docs/operations.md").read_text()
    section = text[text.index("\n## Metrics") :]
    mentioned = set(NAME.findall(section))
    missing = {s.name for s in SPECS} - mentioned
    assert not missing, f"docs/operations.md does not list {sorted(missing)}"
    unknown = mentioned - sample_names(SPECS) - {s.name for s in SPECS}
    assert not unknown, (
        f"docs/operations.md names metrics the code does not have: {sorted(unknown)}"
    )
