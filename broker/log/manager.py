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
        self._lock = threading.Lock()  # guards creation and removal, not lookups
        self._logs: dict[TopicPartition, PartitionLog] = {}
        self._log_dir_of: dict[TopicPartition, Path] = {}
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
                self._logs[tp] = plog
                self._log_dir_of[tp] = log_dir

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
            self._logs[tp] = plog
            self._log_dir_of[tp] = log_dir
            return plog

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
        del self._log_dir_of[tp]
        plog.delete()

    def _pick_log_dir(self) -> Path:
        counts = Counter(self._log_dir_of.values())
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
            for plog in self._logs.values():
                try:
                    plog.close()
                except (StorageError, OSError) as exc:
                    log.error(
                        "close_failed", topic=plog.topic, partition=plog.partition, error=str(exc)
                    )
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
