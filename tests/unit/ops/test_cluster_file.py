"""cluster.json: the nodes `raftka up` records round-trip, and a damaged file or entry is read
as missing, never as a node with made-up fields."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from raftka.ops.cluster_file import (
    CLUSTER_FILE,
    NodeEntry,
    ProcessEntry,
    read_cluster_file,
    read_nodes,
    read_supervisor,
    write_cluster_file,
)


def entry(node_id: int, pid: int | None = 100, incarnation: int = 1) -> NodeEntry:
    return NodeEntry(
        node_id=node_id,
        roles=("broker",),
        addresses={"broker": f"127.0.0.1:{9000 + node_id}"},
        config=f"/c/broker-{node_id}/node.toml",
        log=f"/c/broker-{node_id}/server.log",
        process=ProcessEntry(pid, 4242) if pid is not None else None,
        incarnation=incarnation,
    )


def test_nodes_and_supervisor_round_trip(tmp_path: Path) -> None:
    nodes = [entry(3, pid=None, incarnation=0), entry(2, incarnation=2)]
    dead = dataclasses.replace(entry(1), exit="killed by signal 9 (SIGKILL)")
    write_cluster_file(
        tmp_path,
        {
            "bootstrap_servers": "127.0.0.1:9002",
            "supervisor": ProcessEntry(77, 12).to_json(),
            "nodes": [n.to_json() for n in [*nodes, dead]],
        },
    )
    assert read_nodes(tmp_path) == [dead, entry(2, incarnation=2), nodes[0]]  # sorted by id
    assert read_supervisor(tmp_path) == ProcessEntry(77, 12)
    assert read_cluster_file(tmp_path)["bootstrap_servers"] == "127.0.0.1:9002"
    assert [p.name for p in tmp_path.iterdir()] == [CLUSTER_FILE], "no temporary file is left"


def test_the_file_lists_every_field_a_reader_needs(tmp_path: Path) -> None:
    write_cluster_file(tmp_path, {"nodes": [entry(5, pid=321, incarnation=3).to_json()]})
    node = json.loads((tmp_path / CLUSTER_FILE).read_text())["nodes"][0]
    assert node == {
        "id": 5,
        "roles": ["broker"],
        "addresses": {"broker": "127.0.0.1:9005"},
        "config": "/c/broker-5/node.toml",
        "log": "/c/broker-5/server.log",
        "pid": 321,
        "started": 4242,
        "incarnation": 3,
        "exit": None,
    }


def test_a_missing_or_damaged_file_has_no_nodes(tmp_path: Path) -> None:
    assert read_nodes(tmp_path) == [] and read_supervisor(tmp_path) is None
    (tmp_path / CLUSTER_FILE).write_text('{"nodes": [{"id": 1,')  # torn
    assert read_nodes(tmp_path) == [] and read_cluster_file(tmp_path) == {}
    (tmp_path / CLUSTER_FILE).write_text('["not", "an", "object"]')
    assert read_nodes(tmp_path) == []


def test_malformed_entries_are_left_out(tmp_path: Path) -> None:
    good = entry(1).to_json()
    bad = [
        {**good, "id": "1"},
        {**good, "id": True},
        {**good, "pid": "123"},
        {**good, "pid": True},
        {**good, "roles": "broker"},
        {**good, "addresses": {"broker": 9092}},
        {**good, "incarnation": None},
        {k: v for k, v in good.items() if k != "config"},
        "node 1",
    ]
    write_cluster_file(tmp_path, {"nodes": [*bad, good], "supervisor": {"pid": "x"}})
    assert read_nodes(tmp_path) == [entry(1)]
    assert read_supervisor(tmp_path) is None
