"""Checks every batch of the Raft log's segments by CRC before the log is opened and replayed.

The segmented log (raftka.common.storage) rescans only what an unclean shutdown may have
torn, and cuts a segment at its first bad batch. That is right for a torn tail: bytes written
after the last fsync were never acknowledged. It is wrong for damage inside the log (a flipped
byte on disk): cutting there would make this voter forget entries it acknowledged, and
replaying a damaged entry would stop the state machine. So before opening, every batch of
every segment is checked (the metadata log is small; compaction deletes the segments below the
snapshot, and damage to an entry the snapshot covers would still make the log cut the entries
after it), and damage that is not a torn tail stops the node with the segment named.

A torn tail is damage in the last segment, after an unclean shutdown, after which no intact
batch follows (the batch runs past the end of the file, or only zeros or other garbage follow
it). Damage followed by an intact batch, in any segment but the last, or anywhere after a clean
shutdown (which flushed everything) is damage inside the log.
"""

from __future__ import annotations

from pathlib import Path

from raftka.common.errors import DataDirectoryError
from raftka.common.records.batch import HEADER_SIZE, LOG_OVERHEAD, BatchHeader, validate
from raftka.common.records.errors import RecordError
from raftka.common.storage.checkpoint import CLEAN_SHUTDOWN_FILE
from raftka.common.storage.files import SEGMENT_FILE_RE
from raftka.controller.quorum.durable_state import rebuild_advice


def raft_segments(directory: Path) -> list[Path]:
    """The segment files of the log in ``directory``, in offset order."""
    found = []
    for path in directory.iterdir() if directory.is_dir() else ():
        match = SEGMENT_FILE_RE.match(path.name)
        if match is not None and match.group(2) == "log":
            found.append(path)
    return sorted(found)


def check_segments(directory: Path) -> None:
    """Raise DataDirectoryError if a batch is damaged anywhere but in a torn tail of the last
    segment."""
    segments = raft_segments(directory)
    clean = (directory / CLEAN_SHUTDOWN_FILE).exists()
    for n, path in enumerate(segments):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            try:
                header = validate(data, pos)
            except RecordError as e:
                last_segment = n == len(segments) - 1
                torn = last_segment and not clean and not _intact_batch_after(data, pos)
                if torn:
                    return  # a torn tail: the log cuts it when it opens
                raise DataDirectoryError(
                    f"Raft log segment {path} is damaged at byte {pos} ({e.message}), "
                    f"{_why_not_torn(clean, last_segment)}: this is not a write torn by a "
                    "crash; " + rebuild_advice(directory)
                ) from None
            pos += header.batch_length + LOG_OVERHEAD


def _why_not_torn(clean: bool, last_segment: bool) -> str:
    if not last_segment:
        return "and later segments follow it"
    if clean:
        return "after a clean shutdown, which had flushed every write"
    return "and intact entries follow it"


def _plausible_size(data: bytes, pos: int) -> int | None:
    if len(data) - pos < HEADER_SIZE:
        return None
    size = BatchHeader.parse(data, pos).batch_length + LOG_OVERHEAD
    return size if HEADER_SIZE <= size <= len(data) - pos else None


def _intact_batch_after(data: bytes, pos: int) -> bool:
    """Does a batch that passes its CRC start right after the damaged one at ``pos``?"""
    size = _plausible_size(data, pos)
    if size is None or pos + size >= len(data):
        return False
    try:
        validate(data, pos + size)
    except RecordError:
        return False
    return True
