"""asyncio task helpers shared by every long-running component."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from contextlib import suppress


async def cancel_and_wait(tasks: Iterable[asyncio.Task[None] | None]) -> None:
    """Cancel background tasks and wait until each has finished unwinding."""
    live = [t for t in tasks if t is not None]
    for task in live:
        task.cancel()
    for task in live:
        with suppress(asyncio.CancelledError):
            await task
