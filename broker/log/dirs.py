"""On-disk layout of a broker's log directories.

::

    <log_dir>/.lock                               held (flock) by the broker using the dir
    <log_dir>/<topic>-<partition>/                one partition: segments (see SegmentedLog)
    <log_dir>/<topic>-<partition>/partition.metadata   the topic id, written before any data
    <log_dir>/<topic>-<partition>.<id>-delete/    a partition being deleted (removed on start)

``partition.metadata`` uses Kafka's text layout (``version: 0`` / ``topic_id: <id>``). It lets
a broker tell a directory left by a deleted topic from the partition of a new topic with the
same name. Topic names never end in ``-<digits>`` ambiguously: the partition number is the
part after the last ``-``, and ``-delete`` directories never end in digits.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import uuid
from pathlib import Path

import structlog

from raftka.common.files import atomic_write, fsync_dir
from raftka.common.ids import TopicPartition
from raftka.common.storage import StorageError

PARTITION_METADATA_FILE = "partition.metadata"
DELETE_SUFFIX = "-delete"
LOCK_FILE = ".lock"
METADATA_LOG_DIR_PREFIX = "__cluster_metadata-"
"""The controller's Raft log directory: never a partition, even if found in a log dir."""

_PARTITION_DIR_RE = re.compile(r"^(.+)-(0|[1-9][0-9]*)$")
_METADATA_VERSION = 0

log = structlog.get_logger(__name__)


class InconsistentTopicIdError(StorageError):
    """A partition directory belongs to another topic (same name, different topic id)."""


class LogDirInUseError(StorageError):
    """Another process holds the log directory's lock."""


def partition_dir_name(topic: str, partition: int) -> str:
    if partition < 0:
        raise ValueError(f"partition must be non-negative, got {partition}")
    return f"{topic}-{partition}"


def parse_partition_dir_name(name: str) -> TopicPartition | None:
    """The partition a directory name stands for, or None if it names none."""
    if name.startswith(METADATA_LOG_DIR_PREFIX):
        return None
    match = _PARTITION_DIR_RE.match(name)
    if match is None:
        return None
    return TopicPartition(match.group(1), int(match.group(2)))


def is_delete_dir_name(name: str) -> bool:
    return name.endswith(DELETE_SUFFIX)


def read_topic_id(partition_dir: Path) -> str | None:
    """The topic id in ``partition.metadata``, or None if the file is missing or unreadable."""
    path = partition_dir / PARTITION_METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("partition_metadata_unreadable", path=str(path), error=str(exc))
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    if fields.get("version") != str(_METADATA_VERSION) or not fields.get("topic_id"):
        log.warning("partition_metadata_unreadable", path=str(path), error="unexpected layout")
        return None
    return fields["topic_id"]


def write_topic_id(partition_dir: Path, topic_id: str) -> None:
    """Writes ``partition.metadata`` atomically (and durably)."""
    if not topic_id or "\n" in topic_id:
        raise ValueError(f"invalid topic id {topic_id!r}")
    text = f"version: {_METADATA_VERSION}\ntopic_id: {topic_id}\n"
    atomic_write(partition_dir / PARTITION_METADATA_FILE, text.encode("utf-8"))


def prepare_partition_dir(
    log_dir: Path, topic: str, partition: int, topic_id: str | None
) -> tuple[Path, str | None, bool]:
    """The partition's directory in ``log_dir``, its topic id, and whether it was created.

    Creating needs ``topic_id``, written to ``partition.metadata`` before any data. An
    existing directory whose stored topic id differs from ``topic_id`` raises
    InconsistentTopicIdError (it belongs to a deleted topic of the same name); one without a
    stored id adopts ``topic_id``.
    """
    directory = log_dir / partition_dir_name(topic, partition)
    if not directory.is_dir():
        if topic_id is None:
            raise ValueError(f"creating the log of {topic}-{partition} needs its topic id")
        directory.mkdir(parents=True)
        write_topic_id(directory, topic_id)
        fsync_dir(log_dir)
        return directory, topic_id, True
    stored = read_topic_id(directory)
    if stored is None:
        if topic_id is not None:
            log.warning("partition_metadata_missing", directory=str(directory), topic_id=topic_id)
            write_topic_id(directory, topic_id)
        return directory, topic_id, False
    if topic_id is not None and stored != topic_id:
        raise InconsistentTopicIdError(
            f"{directory} holds topic id {stored}, not {topic_id}: it was left by a "
            f"deleted topic named {topic!r}"
        )
    return directory, stored, False


def remove_partition_dir(partition_dir: Path, topic_id: str | None) -> None:
    """Deletes a (closed) partition directory: first renamed ``<dir>.<id>-delete`` durably,
    so that a crash part-way leaves a directory the next start removes, never a half-deleted
    partition that would be loaded; then removed."""
    tag = topic_id or uuid.uuid4().hex
    doomed = partition_dir.with_name(f"{partition_dir.name}.{tag}{DELETE_SUFFIX}")
    if doomed.exists():
        shutil.rmtree(doomed)
    os.rename(partition_dir, doomed)
    fsync_dir(partition_dir.parent)
    shutil.rmtree(doomed)


def remove_leftover_delete_dirs(log_dir: Path) -> list[str]:
    """Removes ``-delete`` directories left by a crash; returns their names."""
    removed: list[str] = []
    with os.scandir(log_dir) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False) and is_delete_dir_name(entry.name):
                shutil.rmtree(entry.path)
                removed.append(entry.name)
    if removed:
        fsync_dir(log_dir)
    return removed


def lock_log_dir(log_dir: Path) -> int:
    """Takes the directory's exclusive lock; returns the fd to keep open while in use."""
    fd = os.open(log_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LogDirInUseError(
            f"log directory {log_dir} is in use by another process (its {LOCK_FILE} is locked)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


def unlock_log_dir(fd: int) -> None:
    os.close(fd)
