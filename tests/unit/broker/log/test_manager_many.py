"""LogManager.get_or_create_many: many new partitions in one call, opened on parallel threads,
spread over the log directories, with no checkpoint files written for them while empty (the
fsyncs that made creating thousands of partitions take minutes), and reopened unchanged."""

from __future__ import annotations

from pathlib import Path

from raftka.broker.log.leader_epoch_cache import LEADER_EPOCH_CHECKPOINT_FILE
from raftka.broker.log.manager import LogManager, NewPartitionLog
from raftka.common.storage.checkpoint import CHECKPOINT_FILE
from tests.unit.broker.support import OTHER_TOPIC_ID, T0, TOPIC_ID, FakeClock, batch


def open_manager(*dirs: Path) -> LogManager:
    return LogManager.open(dirs, clock=FakeClock())


def test_many_partitions_are_created_at_once_and_spread_over_the_dirs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    manager = open_manager(a, b)
    wanted = [NewPartitionLog("events", p, TOPIC_ID, {"retention.ms": "5"}) for p in range(40)]
    logs = manager.get_or_create_many(wanted, threads=8)
    assert [(p.topic, p.partition) for p in logs] == [("events", p) for p in range(40)]
    assert all(manager.get("events", p) is logs[p] for p in range(40))
    assert logs[3].config_overrides == {"retention.ms": "5"}
    per_dir = [len(list(d.glob("events-*"))) for d in (a, b)]
    assert per_dir == [20, 20]
    # Asked again: the same logs, nothing opened twice.
    assert manager.get_or_create_many(wanted[:5]) == logs[:5]
    manager.close()


def test_an_empty_new_log_writes_no_checkpoints_until_it_has_data(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    (plog,) = manager.get_or_create_many([NewPartitionLog("events", 0, TOPIC_ID)])
    directory = plog.directory
    assert plog.start_leader_epoch(3) == 0
    assert not (directory / CHECKPOINT_FILE).exists()
    assert not (directory / LEADER_EPOCH_CHECKPOINT_FILE).exists()
    plog.append_as_leader(batch(2), leader_epoch=3, now_ms=T0)
    # The first append makes the deferred epoch entry durable.
    assert (directory / LEADER_EPOCH_CHECKPOINT_FILE).exists()
    manager.close()
    again = open_manager(tmp_path)
    reopened = again.get("events", 0)
    assert reopened is not None
    assert reopened.log_end_offset == 2
    assert [(e.epoch, e.start_offset) for e in reopened.leader_epoch_cache.entries] == [(3, 0)]
    again.close()


def test_a_lost_empty_log_checkpoint_reopens_to_the_same_state(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    (plog,) = manager.get_or_create_many([NewPartitionLog("events", 0, TOPIC_ID)])
    plog.start_leader_epoch(3)  # not durable yet: as if the broker crashed now
    manager.close()
    for name in (CHECKPOINT_FILE, LEADER_EPOCH_CHECKPOINT_FILE):
        (plog.directory / name).unlink(missing_ok=True)
    again = open_manager(tmp_path)
    reopened = again.get("events", 0)
    assert reopened is not None
    assert (reopened.log_start_offset, reopened.log_end_offset) == (0, 0)
    assert reopened.start_leader_epoch(3) == 0  # the next leadership assigns it again
    again.close()


def test_a_stale_log_in_the_batch_is_replaced(tmp_path: Path) -> None:
    manager = open_manager(tmp_path)
    old = manager.get_or_create("events", 1, OTHER_TOPIC_ID)
    old.append_as_leader(batch(2), leader_epoch=1, now_ms=T0)
    logs = manager.get_or_create_many(
        [NewPartitionLog("events", 0, TOPIC_ID), NewPartitionLog("events", 1, TOPIC_ID)]
    )
    assert [p.topic_id for p in logs] == [TOPIC_ID, TOPIC_ID]
    assert logs[1].log_end_offset == 0  # the deleted topic's data is gone
    manager.close()
