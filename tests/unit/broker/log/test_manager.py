from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from raftka.broker.log.dirs import (
    PARTITION_METADATA_FILE,
    LogDirInUseError,
    parse_partition_dir_name,
    read_topic_id,
)
from raftka.broker.log.manager import LogManager
from raftka.broker.log.retention import apply_retention
from raftka.common.storage import LogClosedError, StorageError
from tests.unit.broker.support import OTHER_TOPIC_ID, T0, TOPIC_ID, FakeClock, batch

NOW = T0


def open_manager(
    *dirs: Path,
    topic_configs: Callable[[str], Mapping[str, str] | None] | None = None,
    recovery_threads: int = 1,
) -> LogManager:
    return LogManager.open(
        dirs, clock=FakeClock(), topic_configs=topic_configs, recovery_threads=recovery_threads
    )


def test_create_get_and_reopen(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    assert len(manager) == 0
    assert manager.get("events", 0) is None
    plog = manager.get_or_create("events", 0, TOPIC_ID, {"retention.ms": "1000"})
    assert manager.get_or_create("events", 0, TOPIC_ID, {"retention.ms": "1000"}) is plog
    assert manager.get("events", 0) is plog
    assert read_topic_id(tmp_path / "events-0") == TOPIC_ID
    plog.append_as_leader(batch(3), leader_epoch=1, now_ms=NOW)
    other = manager.get_or_create("logs.v2", 11, OTHER_TOPIC_ID)
    other.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)
    records = plog.read(0, 1 << 20).records
    manager.close()
    with pytest.raises(LogClosedError):
        manager.get_or_create("events", 1, TOPIC_ID)

    again = open_manager(tmp_path)
    assert [(p.topic, p.partition, p.topic_id) for p in again.partitions()] == [
        ("events", 0, TOPIC_ID),
        ("logs.v2", 11, OTHER_TOPIC_ID),
    ]
    found = again.get("events", 0)
    assert found is not None
    assert (found.log_end_offset, found.high_watermark) == (3, 3)
    assert found.read(0, 1 << 20).records == records
    assert found.config.retention_ms == 604800000  # opened with defaults: no lookup given
    assert again.get_or_create("events", 0, TOPIC_ID, {"retention.ms": "1000"}) is found
    assert found.config.retention_ms == 1000
    again.close()


def test_open_looks_up_topic_configs(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        manager.get_or_create("events", 0, TOPIC_ID, {"segment.bytes": "1000"})
    lookups: list[str] = []

    def configs(topic: str) -> Mapping[str, str] | None:
        lookups.append(topic)
        return {"segment.bytes": "1000"}

    with open_manager(tmp_path, topic_configs=configs) as manager:
        plog = manager.get("events", 0)
        assert plog is not None and plog.config.segment_bytes == 1000
    assert lookups == ["events"]


def test_new_partitions_go_to_the_log_dir_with_the_fewest(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    manager = open_manager(a, b)
    for partition in range(4):
        manager.get_or_create("events", partition, TOPIC_ID)
    assert [manager.log_dir_of("events", p) for p in range(4)] == [a, b, a, b]
    manager.delete("events", 0)
    manager.delete("events", 2)
    assert manager.get_or_create("other", 0, OTHER_TOPIC_ID).directory.parent == a
    manager.close()
    again = open_manager(a, b)
    assert {(p.topic, p.partition): p.directory.parent for p in again.partitions()} == {
        ("events", 1): b,
        ("events", 3): b,
        ("other", 0): a,
    }
    again.close()


def test_delete_removes_the_partition(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    plog = manager.get_or_create("events", 0, TOPIC_ID)
    plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    assert manager.delete("events", 0)
    assert not manager.delete("events", 0)
    assert manager.get("events", 0) is None
    assert plog.closed
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    manager.close()


def test_leftover_delete_dirs_are_removed_on_open(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        plog = manager.get_or_create("events", 0, TOPIC_ID)
        plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
        manager.get_or_create("events", 1, TOPIC_ID)
    # A crash after the rename of a delete, before the removal:
    (tmp_path / "events-0").rename(tmp_path / f"events-0.{TOPIC_ID}-delete")
    (tmp_path / "other-3.0123abcd-delete").mkdir()
    (tmp_path / "not a partition").mkdir()
    (tmp_path / "stray-file-0").write_text("a file, not a directory")
    with open_manager(tmp_path) as manager:
        assert [(p.topic, p.partition) for p in manager.partitions()] == [("events", 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock",
        "events-1",
        "not a partition",
        "stray-file-0",
    ]


def test_a_recreated_topic_does_not_reuse_the_old_data(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    old = manager.get_or_create("events", 0, TOPIC_ID)
    old.append_as_leader(batch(5), leader_epoch=1, now_ms=NOW)
    new = manager.get_or_create("events", 0, OTHER_TOPIC_ID)
    assert new is not old and old.closed
    assert (new.topic_id, new.log_start_offset, new.log_end_offset) == (OTHER_TOPIC_ID, 0, 0)
    assert new.read(0, 1 << 20).records == b""
    new.append_as_leader(batch(1), leader_epoch=1, now_ms=NOW)
    manager.close()
    again = open_manager(tmp_path)
    found = again.get("events", 0)
    assert found is not None
    assert (found.topic_id, found.log_end_offset) == (OTHER_TOPIC_ID, 1)
    again.close()


def test_a_topic_recreated_while_the_broker_was_down(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        old = manager.get_or_create("events", 0, TOPIC_ID)
        old.append_as_leader(batch(5), leader_epoch=1, now_ms=NOW)
    with open_manager(tmp_path) as manager:
        found = manager.get("events", 0)
        assert found is not None and found.topic_id == TOPIC_ID  # as found on disk
        new = manager.get_or_create("events", 0, OTHER_TOPIC_ID)
        assert (new.topic_id, new.log_end_offset) == (OTHER_TOPIC_ID, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "events-0"]


def test_a_partition_found_without_metadata_adopts_the_topic_id(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        plog = manager.get_or_create("events", 0, TOPIC_ID)
        plog.append_as_leader(batch(2), leader_epoch=1, now_ms=NOW)
    (tmp_path / "events-0" / PARTITION_METADATA_FILE).unlink()
    with open_manager(tmp_path) as manager:
        plog = manager.get_or_create("events", 0, TOPIC_ID)
        assert (plog.topic_id, plog.log_end_offset) == (TOPIC_ID, 2)
    assert read_topic_id(tmp_path / "events-0") == TOPIC_ID


def test_a_log_dir_is_used_by_one_manager_at_a_time(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    with pytest.raises(LogDirInUseError):
        open_manager(tmp_path / "other", tmp_path)
    open_manager(tmp_path / "other").close()  # the failed open released the lock it took
    manager.close()
    open_manager(tmp_path).close()


def test_a_partition_in_two_log_dirs_is_an_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    with open_manager(a) as manager:
        manager.get_or_create("events", 0, TOPIC_ID)
    with open_manager(b) as manager:
        manager.get_or_create("events", 0, TOPIC_ID)
    with pytest.raises(StorageError, match="two log directories"):
        open_manager(a, b)
    open_manager(a).close()  # the failed open released its locks


def test_parallel_open(tmp_path: Path) -> None:
    with open_manager(tmp_path) as manager:
        for partition in range(20):
            plog = manager.get_or_create("events", partition, TOPIC_ID)
            plog.append_as_leader(batch(partition + 1), leader_epoch=1, now_ms=NOW)
    with open_manager(tmp_path, recovery_threads=4) as manager:
        assert [p.log_end_offset for p in manager.partitions()] == [p + 1 for p in range(20)]


def test_retention_and_flush_over_all_partitions(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    overrides = {"segment.bytes": "200", "retention.ms": "1000"}
    for partition in range(3):
        plog = manager.get_or_create("events", partition, TOPIC_ID, overrides)
        for _ in range(3):
            plog.append_as_leader(batch(1, value_size=100), leader_epoch=1, now_ms=NOW)
        assert plog.durable_offset == 0
    manager.flush_all()
    assert [p.durable_offset for p in manager.partitions()] == [3, 3, 3]
    assert apply_retention(manager.partitions(), T0 + 10_000) == 6
    assert [p.log_start_offset for p in manager.partitions()] == [2, 2, 2]
    manager.close()


def test_partition_dir_names() -> None:
    assert parse_partition_dir_name("events-0") == ("events", 0)
    assert parse_partition_dir_name("my-topic-12") == ("my-topic", 12)
    assert parse_partition_dir_name(".hidden-1") == (".hidden", 1)
    for name in ("events", "events-", "events-01", "events-0.abc-delete", "__cluster_metadata-0"):
        assert parse_partition_dir_name(name) is None
