"""Waiting on a condition with a deadline: the one way tests synchronise with work running in
the same event loop, or (``wait_until``) in other processes (no test sleeps for a fixed time)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from raftka.common.errors import RaftkaError

T = TypeVar("T")


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


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout_s: float = 20.0, what: str = "condition"
) -> T:
    """Await ``probe`` until it returns something other than None (errors count as "not yet")."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = await probe()
            if value is not None:
                return value
        except RaftkaError as e:
            last = e.message
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout_s}s (last error: {last})")


async def holds_for(
    probe: Callable[[], Awaitable[bool]],
    *,
    duration_s: float,
    what: str = "condition",
    poll_s: float = 0.1,
) -> int:
    """Check ``probe`` again and again for ``duration_s``: fail the moment it is False.
    Returns how many times it was checked (so a caller can assert it really looked)."""
    deadline = time.monotonic() + duration_s
    checks = 0
    while True:
        if not await probe():
            raise AssertionError(f"{what} stopped holding after {checks} checks")
        checks += 1
        if time.monotonic() >= deadline:
            return checks
        await asyncio.sleep(poll_s)


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout_s: float = 20.0, poll_s: float = 0.01
) -> None:
    """Block until ``condition()`` holds (work in another process, e.g. a node's state);
    fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout_s}s")
        time.sleep(poll_s)
