"""Every partition log of one broker, across one or more log directories.

On open, each log directory is locked (so two brokers cannot share it), ``-delete``
directories left by a crash are removed, and every partition directory is opened through
:meth:`PartitionLog.open` (a clean shutdown means no rescan; after a crash only the segments
past the last recovery point are). New partitions go to the log directory holding the fewest.

Methods are synchronous and thread-safe; asyncio callers run them with ``asyncio.to_thread``.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import structlog

from raftka.broker.log.dirs import (
    lock_log_dir,
    parse_partition_dir_name,
    remove_leftover_delete_dirs,
    unlock_log_dir,
)
from raftka.broker.log.partition_log import PartitionLog
from raftka.common.clock import Clock, wall_clock_ms
from raftka.common.errors import InvalidTopicError
from raftka.common.ids import TopicPartition
from raftka.common.storage import LogClosedError, StorageError

CREATE_THREADS = 16
"""Threads that open new partition logs at once (:meth:`LogManager.get_or_create_many`)."""


class NewPartitionLog(NamedTuple):
    """A log :meth:`LogManager.get_or_create_many` is asked for."""

    topic: str
    partition: int
    topic_id: str
    configs: Mapping[str, str] | None = None


TopicConfigsLookup = Callable[[str], Mapping[str, str] | None]
"""A topic's config overrides by topic name (None: not known, use the defaults)."""

log = structlog.get_logger(__name__)


class LogManager:
    """The partition logs of one broker."""

    def __init__(
        self,
        log_dirs: Sequence[Path],
        lock_fds: Sequence[int],
        *,
        fsync_every_batch: bool,
        hw_follows_log_end: bool,
        clock: Clock,
    ) -> None:
        """Use :meth:`open`."""
        self._log_dirs = tuple(log_dirs)
        self._lock_fds = list(lock_fds)
        self._fsync_every_batch = fsync_every_batch
        self._hw_follows_log_end = hw_follows_log_end
        self._clock = clock
        self._lock = threading.RLock()  # guards creation and removal, not lookups
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._log_dir_of: dict[TopicPartition, Path] = {}
        self._dir_counts: Counter[Path] = Counter()
        self._closed = False

    @classmethod
    def open(
        cls,
        log_dirs: Iterable[str | os.PathLike[str]],
        *,
        fsync_every_batch: bool = False,
        hw_follows_log_end: bool = True,
        topic_configs: TopicConfigsLookup | None = None,
        recovery_threads: int = 1,
        clock: Clock | None = None,
    ) -> LogManager:
        """Opens every partition found in ``log_dirs`` (created if missing).

        ``topic_configs`` gives the config overrides to open each found partition with
        (defaults otherwise; :meth:`get_or_create` applies the current ones later).
        ``recovery_threads`` > 1 opens partitions in parallel (fsyncs release the GIL).
        Raises LogDirInUseError if another process holds a directory, StorageError if one
        partition is found in two directories.
        """
        dirs = [Path(d) for d in log_dirs]
        if not dirs:
            raise ValueError("at least one log directory is needed")
        if len({d.resolve() for d in dirs}) != len(dirs):
            raise ValueError(f"log directories listed twice: {[str(d) for d in dirs]}")
        lock_fds: list[int] = []
        try:
            for directory in dirs:
                directory.mkdir(parents=True, exist_ok=True)
                lock_fds.append(lock_log_dir(directory))
        except BaseException:
            for fd in lock_fds:
                unlock_log_dir(fd)
            raise
        manager = cls(
            dirs,
            lock_fds,
            fsync_every_batch=fsync_every_batch,
            hw_follows_log_end=hw_follows_log_end,
            clock=clock or wall_clock_ms,
        )
        try:
            manager._load(topic_configs, recovery_threads)
        except BaseException:
            manager.close()
            raise
        return manager

    def _load(self, topic_configs: TopicConfigsLookup | None, threads: int) -> None:
        found: dict[TopicPartition, Path] = {}
        for log_dir in self._log_dirs:
            removed = remove_leftover_delete_dirs(log_dir)
            if removed:
                log.info("deleted_leftover_partition_dirs", log_dir=str(log_dir), names=removed)
            with os.scandir(log_dir) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    tp = parse_partition_dir_name(entry.name)
                    if tp is None:
                        continue
                    if tp in found:
                        raise StorageError(
                            f"partition {tp} is in two log directories: {found[tp]} and {log_dir}"
                        )
                    found[tp] = log_dir

        def open_one(item: tuple[TopicPartition, Path]) -> None:
            tp, log_dir = item
            overrides = topic_configs(tp.topic) if topic_configs is not None else None
            try:
                plog = self._open_partition(log_dir, tp, None, overrides)
            except InvalidTopicError as exc:
                log.warning("ignored_partition_dir", log_dir=str(log_dir), reason=str(exc))
                return
            with self._lock:  # registered at once, so that close() after a failure closes it
                self._register_locked(tp, log_dir, plog)

        items = sorted(found.items())
        if threads > 1 and len(items) > 1:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="log-recovery") as pool:
                for _ in pool.map(open_one, items):
                    pass
        else:
            for item in items:
                open_one(item)
        log.info(
            "log_manager_opened",
            log_dirs=[str(d) for d in self._log_dirs],
            partitions=len(self._logs),
        )

    def _open_partition(
        self,
        log_dir: Path,
        tp: TopicPartition,
        topic_id: str | None,
        overrides: Mapping[str, str] | None,
    ) -> PartitionLog:
        return PartitionLog.open(
            log_dir,
            tp.topic,
            tp.partition,
            topic_id=topic_id,
            config_overrides=overrides,
            fsync_every_batch=self._fsync_every_batch,
            hw_follows_log_end=self._hw_follows_log_end,
            clock=self._clock,
        )

    # ================================================================== lookups

    @property
    def log_dirs(self) -> tuple[Path, ...]:
        return self._log_dirs

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        return self._logs.get(TopicPartition(topic, partition))

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        return self._log_dir_of.get(TopicPartition(topic, partition))

    def partitions(self) -> list[PartitionLog]:
        """Every open partition log, by topic and partition."""
        return [self._logs[tp] for tp in sorted(self._logs)]

    def __len__(self) -> int:
        return len(self._logs)

    # ================================================================== changes

    def get_or_create(
        self,
        topic: str,
        partition: int,
        topic_id: str,
        config_overrides: Mapping[str, str] | None = None,
    ) -> PartitionLog:
        """The partition's log, created in the log directory with the fewest partitions if
        absent. An existing log whose configs differ gets ``config_overrides``; one that
        belongs to another topic id (a deleted topic of the same name) is deleted and a new,
        empty log created in its place; one found without a topic id adopts ``topic_id``."""
        tp = TopicPartition(topic, partition)
        overrides = dict(config_overrides or {})
        with self._lock:
            self._check_open()
            existing = self._logs.get(tp)
            if existing is not None:
                if existing.topic_id is None:
                    existing.assign_topic_id(topic_id)
                if existing.topic_id == topic_id:
                    if existing.config_overrides != overrides:
                        existing.update_configs(overrides)
                    return existing
                log.warning(
                    "stale_partition_log_deleted",
                    topic=topic,
                    partition=partition,
                    stale_topic_id=existing.topic_id,
                    topic_id=topic_id,
                )
                self._remove_locked(tp, existing)
            log_dir = self._pick_log_dir()
            plog = self._open_partition(log_dir, tp, topic_id, overrides)
            self._register_locked(tp, log_dir, plog)
            return plog

    def get_or_create_many(
        self, wanted: Sequence[NewPartitionLog], threads: int = CREATE_THREADS
    ) -> list[PartitionLog]:
        """:meth:`get_or_create` of each, in order, the new logs opened by ``threads`` threads
        at once (their fsyncs then share the file system's journal commits: creating
        thousands of partitions one after another waits out thousands of fsyncs). A log that
        cannot be opened does not stop the others; the first such error is raised after the
        rest are registered."""
        found: dict[int, PartitionLog] = {}
        to_open: list[tuple[int, TopicPartition, Path, NewPartitionLog]] = []
        with self._lock:
            self._check_open()
            for i, new in enumerate(wanted):
                tp = TopicPartition(new.topic, new.partition)
                existing = self._logs.get(tp)
                if existing is not None and existing.topic_id in (None, new.topic_id):
                    found[i] = self.get_or_create(*new)  # reentrant lock: adopts id, configs
                    continue
                if existing is not None:
                    found[i] = self.get_or_create(*new)  # the stale log is replaced (rare)
                    continue
                log_dir = self._pick_log_dir()
                self._dir_counts[log_dir] += 1  # reserved, so the next picks spread
                to_open.append((i, tp, log_dir, new))

        def open_one(item: tuple[int, TopicPartition, Path, NewPartitionLog]) -> PartitionLog:
            _i, tp, log_dir, new = item
            return self._open_partition(log_dir, tp, new.topic_id, dict(new.configs or {}))

        first_error: BaseException | None = None
        opened: list[tuple[int, TopicPartition, Path, PartitionLog]] = []
        if to_open:
            workers = max(1, min(threads, len(to_open)))
            with ThreadPoolExecutor(workers, thread_name_prefix="log-create") as pool:
                futures = [(item, pool.submit(open_one, item)) for item in to_open]
                for (i, tp, log_dir, _new), future in futures:
                    try:
                        opened.append((i, tp, log_dir, future.result()))
                    except Exception as e:  # the others are still registered
                        first_error = first_error or e
        with self._lock:
            for _i, _tp, log_dir, _new in to_open:
                self._dir_counts[log_dir] -= 1  # the reservation; registering counts again
            for i, tp, log_dir, plog in opened:
                if self._closed or tp in self._logs:
                    plog.close()  # closed, or created by another caller meanwhile
                    if self._closed:
                        continue
                    found[i] = self._logs[tp]
                    continue
                self._register_locked(tp, log_dir, plog)
                found[i] = plog
        if first_error is not None:
            raise first_error
        if self._closed:
            raise LogClosedError("the log manager was closed while partitions were created")
        return [found[i] for i in range(len(wanted))]

    def _register_locked(self, tp: TopicPartition, log_dir: Path, plog: PartitionLog) -> None:
        self._logs[tp] = plog
        self._log_dir_of[tp] = log_dir
        self._dir_counts[log_dir] += 1

    def delete(self, topic: str, partition: int) -> bool:
        """Closes the partition's log and removes its directory; False if there was none."""
        tp = TopicPartition(topic, partition)
        with self._lock:
            self._check_open()
            existing = self._logs.get(tp)
            if existing is None:
                return False
            self._remove_locked(tp, existing)
            return True

    def _remove_locked(self, tp: TopicPartition, plog: PartitionLog) -> None:
        del self._logs[tp]
        self._dir_counts[self._log_dir_of.pop(tp)] -= 1
        plog.delete()

    def _pick_log_dir(self) -> Path:
        counts = self._dir_counts  # kept up to date: O(log dirs), not O(partitions)
        return min(self._log_dirs, key=lambda d: counts[d])  # first listed wins ties

    # ================================================================== maintenance

    def flush_all(self) -> None:
        """fsyncs every partition and writes its recovery point. Every partition is tried;
        the first failure is raised afterwards."""
        first: BaseException | None = None
        for plog in list(self._logs.values()):
            try:
                plog.flush(checkpoint=True)
            except LogClosedError:
                continue
            except (StorageError, OSError) as exc:
                log.error(
                    "flush_failed", topic=plog.topic, partition=plog.partition, error=str(exc)
                )
                first = first or exc
        if first is not None:
            raise first

    # ================================================================== closing

    def close(self) -> None:
        """Closes every partition log (a clean shutdown) and releases the directories.
        Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True

            def close_one(plog: PartitionLog) -> None:
                try:
                    plog.close()
                except (StorageError, OSError) as exc:
                    log.error(
                        "close_failed", topic=plog.topic, partition=plog.partition, error=str(exc)
                    )

            logs = list(self._logs.values())
            if len(logs) > 1:  # each close writes and fsyncs checkpoints: overlap them
                workers = min(CREATE_THREADS, len(logs))
                with ThreadPoolExecutor(workers, thread_name_prefix="log-close") as pool:
                    for _ in pool.map(close_one, logs):
                        pass
            else:
                for plog in logs:
                    close_one(plog)
            fds, self._lock_fds = self._lock_fds, []
            for fd in fds:
                unlock_log_dir(fd)
            log.info("log_manager_closed", partitions=len(self._logs))

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise LogClosedError("the log manager is closed")

    def __enter__(self) -> LogManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
