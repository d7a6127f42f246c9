"""The ``recovery-point`` checkpoint of a log directory.

Text, three lines: format version (0), the recovery point (every offset below it is durable
and was validated, so segments wholly below it are not rescanned on open), and the log start
offset. Written atomically; a missing or unreadable file means "recover every segment".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from raftka.common.files import atomic_write

CHECKPOINT_FILE = "recovery-point"
CLEAN_SHUTDOWN_FILE = "clean-shutdown"
_VERSION = 0

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    recovery_point: int
    log_start_offset: int


def read_checkpoint(directory: Path) -> Checkpoint | None:
    path = directory / CHECKPOINT_FILE
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    lines = text.split("\n")
    try:
        if len(lines) != 4 or lines[3] != "" or int(lines[0]) != _VERSION:
            raise ValueError("unexpected layout")
        checkpoint = Checkpoint(recovery_point=int(lines[1]), log_start_offset=int(lines[2]))
        if checkpoint.recovery_point < 0 or checkpoint.log_start_offset < 0:
            raise ValueError("negative offset")
    except ValueError as exc:
        log.warning("checkpoint_unreadable", path=str(path), error=str(exc))
        return None
    return checkpoint


def write_checkpoint(directory: Path, checkpoint: Checkpoint) -> None:
    text = f"{_VERSION}\n{checkpoint.recovery_point}\n{checkpoint.log_start_offset}\n"
    atomic_write(directory / CHECKPOINT_FILE, text.encode("ascii"))
