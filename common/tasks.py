"""asyncio task helpers shared by every long-running component."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import suppress

import structlog

log = structlog.get_logger(__name__)

RECANCEL_AFTER_S = 1.0
"""How long a cancelled task may take to finish before it is cancelled again."""


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """Cancel background tasks and wait until each has finished unwinding.

    A task still running RECANCEL_AFTER_S after its cancel is cancelled again: on Python 3.11
    ``asyncio.wait_for`` returns its awaitable's result, dropping the cancellation, when both
    arrive together, and a loop around it would then run on (and this wait never end)."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        while not task.done():
            await asyncio.wait([task], timeout=RECANCEL_AFTER_S)
            if not task.done():
                log.warning("task_cancelled_again", task=task.get_name())
                task.cancel()
        with suppress(asyncio.CancelledError):
            await task
