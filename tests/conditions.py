"""Waiting on a condition with a deadline: the one way tests synchronise with work running in
the same event loop (no test sleeps for a fixed time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], bool],
    *,
    timeout_s: float = 10.0,
    what: str = "condition",
    poll_s: float = 0.001,
) -> None:
    """Yield to other tasks until ``condition()`` holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s}s")
        await asyncio.sleep(poll_s)
