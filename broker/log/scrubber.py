"""The background scrubber: re-reads every partition log's segments at a bounded rate and
verifies each batch (framing, CRC-32C, contiguous offsets, segments ending where the next
begins), so that damage to data nobody reads is found before a replica that needs it does.

:class:`Scrubber` does the work in bounded steps (blocking file I/O: run each step on an I/O
thread); :func:`run_scrubber` paces the steps to ``bytes_per_second`` and hands what it finds
to a callback on the event loop. Found damage is recorded in the partition log
(:meth:`PartitionLog.mark_damaged <raftka.broker.log.partition_log.PartitionLog.mark_damaged>`:
reads at or past it are refused from then on) before the callback decides the repair. A log
whose damage is already known is skipped until it is repaired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog

from raftka.broker.log.partition_log import PartitionLog
from raftka.common.storage.errors import LogClosedError
from raftka.common.storage.results import DamageReport

log = structlog.get_logger(__name__)

MAX_STEP_BYTES = 1 << 20
"""Bytes read per step at most (one step holds a log's lock while it reads)."""
IDLE_S = 1.0
"""Pause when there is nothing to scrub."""


@dataclass(frozen=True, slots=True)
class FoundDamage:
    log: PartitionLog
    report: DamageReport


@dataclass(slots=True)
class ScrubStep:
    bytes_read: int = 0
    found: list[FoundDamage] = field(default_factory=list)
    pass_done: bool = False
    """The step finished a pass over every log."""


@dataclass(slots=True)
class _Cursor:
    log: PartitionLog
    segments: list[int]
    generation: int
    position: int = 0
    next_offset: int = -1


class Scrubber:
    """Passes over ``logs()`` (read at the start of each pass), segment by segment, oldest
    first. Thread-compatible: one step at a time."""

    def __init__(self, logs: Callable[[], Sequence[PartitionLog]]) -> None:
        self._logs = logs
        self._pending: list[PartitionLog] = []
        self._cursor: _Cursor | None = None
        self._in_pass = False
        self.passes = 0
        """Passes completed."""
        self.bytes_verified = 0
        self.damage_found = 0
        """Damage reports recorded (a metric: the logs say where)."""

    def step(self, max_bytes: int) -> ScrubStep:
        """Verifies up to about ``max_bytes`` (at least one batch when there is one)."""
        result = ScrubStep()
        budget = max(1, max_bytes)
        started_pass = False
        while result.bytes_read < budget:
            cursor = self._cursor or self._next_cursor()
            if cursor is None:
                if self._in_pass:
                    self._in_pass = False
                    self.passes += 1
                    result.pass_done = True
                    break
                if started_pass or not self._begin_pass():
                    break
                started_pass = self._in_pass = True
                continue
            self._cursor = cursor
            plog = cursor.log
            if plog.closed or plog.damage is not None or not cursor.segments:
                self._cursor = None
                continue
            base = cursor.segments[0]
            if cursor.next_offset < 0:
                cursor.position, cursor.next_offset = 0, base
            try:
                progress = plog.scrub(
                    base,
                    cursor.position,
                    cursor.next_offset,
                    budget - result.bytes_read,
                    cursor.generation,
                )
            except LogClosedError:  # deleted or closed meanwhile
                self._cursor = None
                continue
            result.bytes_read += progress.bytes_read
            cursor.position, cursor.next_offset = progress.next_position, progress.next_offset
            if progress.damage is not None:
                self._cursor = None
                if plog.mark_damaged(progress.damage, source="scrub"):
                    self.damage_found += 1
                    result.found.append(FoundDamage(plog, progress.damage))
            elif progress.done:
                cursor.segments.pop(0)
                cursor.next_offset = -1
        self.bytes_verified += result.bytes_read
        return result

    def _begin_pass(self) -> bool:
        self._pending = list(self._logs())
        return bool(self._pending)

    def _next_cursor(self) -> _Cursor | None:
        while self._pending:
            plog = self._pending.pop(0)
            if not plog.closed:
                return _Cursor(plog, list(plog.segment_base_offsets), plog.generation)
        return None


IoRunner = Callable[..., Awaitable[object]]
Sleep = Callable[[float], Awaitable[None]]


async def run_scrubber(
    scrubber: Scrubber,
    *,
    bytes_per_second: int,
    io: IoRunner,
    on_damage: Callable[[FoundDamage], None],
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Runs ``scrubber`` forever at about ``bytes_per_second`` (0: returns at once, the
    scrubber is off): each step reads at most a second's worth (and at most
    :data:`MAX_STEP_BYTES`), then sleeps for the time those bytes are worth."""
    if bytes_per_second <= 0:
        return
    step_bytes = min(bytes_per_second, MAX_STEP_BYTES)
    while True:
        step = await io(scrubber.step, step_bytes)
        assert isinstance(step, ScrubStep)
        for found in step.found:
            on_damage(found)
        if step.pass_done:
            log.debug(
                "scrub_pass_done",
                passes=scrubber.passes,
                bytes_verified=scrubber.bytes_verified,
                damage_found=scrubber.damage_found,
            )
        if step.bytes_read == 0:
            await sleep(IDLE_S)
        else:
            await sleep(step.bytes_read / bytes_per_second)
