"""run_scrubber paces the scrubber to its byte rate (a fake sleep records the pauses), hands
found damage to its callback, and does nothing at a rate of 0."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from raftka.broker.log.scrubber import FoundDamage, Scrubber, run_scrubber
from tests.unit.broker.log.test_partition_log_damage import SEGMENT_BYTES, damaged, write
from tests.unit.broker.support import open_partition


class Stop(Exception):
    pass


def sleeps_until(limit: int) -> tuple[list[float], Callable[[float], Any]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) >= limit:
            raise Stop

    return slept, sleep


async def direct(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def test_the_rate_bounds_the_bytes_read(tmp_path: Path) -> None:
    plog = open_partition(tmp_path, overrides={"segment.bytes": SEGMENT_BYTES})
    write(plog)
    scrubber = Scrubber(lambda: [plog])
    slept, sleep = sleeps_until(6)
    with pytest.raises(Stop):
        asyncio.run(
            run_scrubber(scrubber, bytes_per_second=1000, io=direct, on_damage=print, sleep=sleep)
        )
    # A step reads at most a second's worth (1000 bytes, plus the rest of a batch) and sleeps
    # for what it read.
    assert all(0 < s <= 1.2 for s in slept)
    assert scrubber.bytes_verified > 3000
    assert scrubber.bytes_verified <= sum(slept) * 1000 + 1e-6
    plog.close()


def test_damage_goes_to_the_callback(tmp_path: Path) -> None:
    plog, _ = damaged(tmp_path)
    found: list[FoundDamage] = []
    _slept, sleep = sleeps_until(20)
    with pytest.raises(Stop):
        asyncio.run(
            run_scrubber(
                Scrubber(lambda: [plog]),
                bytes_per_second=1 << 20,
                io=direct,
                on_damage=found.append,
                sleep=sleep,
            )
        )
    assert [(f.log, f.report.offset) for f in found] == [(plog, 14)]
    plog.close()


def test_a_rate_of_zero_turns_the_scrubber_off(tmp_path: Path) -> None:
    def no_logs() -> list[Any]:
        raise AssertionError("the scrubber must not look at any log")

    asyncio.run(run_scrubber(Scrubber(no_logs), bytes_per_second=0, io=direct, on_damage=print))
