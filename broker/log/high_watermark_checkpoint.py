"""The ``high-watermark-checkpoint`` file of a partition directory.

Kafka keeps every partition's high watermark in one ``replication-offset-checkpoint`` per log
directory; Raftka keeps one small file per partition directory, owned by its
:class:`~raftka.broker.log.partition_log.PartitionLog`, so that partitions checkpoint
independently. Text, two lines: format version (0) and the high watermark. Written
atomically; a missing or unreadable file means "unknown" (the high watermark then restarts at
the log start offset, and replication raises it again).
"""

from __future__ import annotations

from pathlib import Path

import structlog

from raftka.common.files import atomic_write

HIGH_WATERMARK_CHECKPOINT_FILE = "high-watermark-checkpoint"
_VERSION = 0

log = structlog.get_logger(__name__)


def read_high_watermark(directory: Path) -> int | None:
    path = directory / HIGH_WATERMARK_CHECKPOINT_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("high_watermark_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    lines = text.split("\n")
    try:
        if len(lines) != 3 or lines[2] != "" or int(lines[0]) != _VERSION:
            raise ValueError("unexpected layout")
        value = int(lines[1])
        if value < 0:
            raise ValueError("negative high watermark")
    except ValueError as exc:
        log.warning("high_watermark_checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    return value


def write_high_watermark(directory: Path, high_watermark: int) -> None:
    text = f"{_VERSION}\n{high_watermark}\n"
    atomic_write(directory / HIGH_WATERMARK_CHECKPOINT_FILE, text.encode("ascii"))
