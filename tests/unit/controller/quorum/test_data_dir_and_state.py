from __future__ import annotations

from pathlib import Path

import pytest

from raftka.common.data_dir import check_data_dir, format_data_dir, new_cluster_id
from raftka.common.errors import DataDirectoryError
from raftka.common.ids import Index, NodeId, Term
from raftka.controller.quorum.durable_state import HardStateFile, SnapshotStore
from raftka.controller.raft.types import HardState, Snapshot, SnapshotMeta


def test_format_then_check(tmp_path: Path) -> None:
    cluster = new_cluster_id()
    assert len(cluster) == 22
    format_data_dir(tmp_path / "d", cluster, 3)
    identity = check_data_dir(tmp_path / "d", 3)
    assert identity.cluster_id == cluster and identity.node_id == 3


def test_unformatted_missing_and_foreign(tmp_path: Path) -> None:
    with pytest.raises(DataDirectoryError, match="does not exist"):
        check_data_dir(tmp_path / "absent", 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataDirectoryError, match="not formatted"):
        check_data_dir(tmp_path / "empty", 1)
    format_data_dir(tmp_path / "d", new_cluster_id(), 2)
    with pytest.raises(DataDirectoryError, match="belongs to node 2"):
        check_data_dir(tmp_path / "d", 1)
    with pytest.raises(DataDirectoryError, match="already formatted"):
        format_data_dir(tmp_path / "d", new_cluster_id(), 2)


def test_hard_state_round_trip_and_damage(tmp_path: Path) -> None:
    f = HardStateFile(tmp_path)
    assert f.load() == HardState(Term(0), None)
    f.save(HardState(Term(7), NodeId(2)))
    assert HardStateFile(tmp_path).load() == HardState(Term(7), NodeId(2))
    f.path.write_text("{not json")
    with pytest.raises(DataDirectoryError, match="damaged"):
        f.load()


def test_snapshot_store_keeps_the_two_newest_and_refuses_a_damaged_newest(tmp_path: Path) -> None:
    store = SnapshotStore(tmp_path)
    assert store.load_latest() is None
    store.save(Snapshot(SnapshotMeta(Index(10), Term(1)), b"ten"))
    store.save(Snapshot(SnapshotMeta(Index(20), Term(2)), b"twenty"))
    store.save(Snapshot(SnapshotMeta(Index(30), Term(2)), b"thirty"))
    assert len(list(tmp_path.glob("*.checkpoint"))) == 2
    latest = store.load_latest()
    assert (
        latest is not None
        and latest.meta == SnapshotMeta(Index(30), Term(2))
        and latest.data == b"thirty"
    )
    # damage the newest: refused (an older one would forget what the newest covers)
    newest = sorted(tmp_path.glob("*.checkpoint"))[-1]
    raw = bytearray(newest.read_bytes())
    raw[-1] ^= 0xFF
    newest.write_bytes(bytes(raw))
    with pytest.raises(DataDirectoryError, match=r"newest Raft snapshot .* is damaged"):
        store.load_latest()
