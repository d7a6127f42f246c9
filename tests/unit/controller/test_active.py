"""ActiveController.write with a plan that comes in slices: each slice is its own Raft entry,
planned against the working image with the earlier slices applied, the event loop runs between
slices, and the answer comes once the last one committed."""

from __future__ import annotations

import asyncio

from raftka.common.ids import Index
from raftka.common.metadata.image import MetadataImage
from raftka.common.metadata.records import config_record
from raftka.controller.control.result import ControllerResult
from raftka.v1.common_pb2 import ResourceType

from .test_service import _leading, controller

SLICES = 3


def test_a_sliced_plan_is_written_as_one_entry_per_slice() -> None:
    asyncio.run(_sliced_write())


async def _sliced_write() -> None:
    async with controller() as (servicer, runtime):
        await _leading(runtime)
        active = servicer._active
        seen: list[tuple[int, Index]] = []
        ticks = 0

        async def other_work() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        def plan(image: MetadataImage, index: Index) -> ControllerResult[str]:
            done = len(image.broker_configs(""))
            seen.append((done, index))
            record = config_record(ResourceType.RESOURCE_TYPE_BROKER, "", f"k{done}", "v")
            return ControllerResult((record,), f"slice {done}", more=done + 1 < SLICES)

        first = runtime.status().last_index
        ticker = asyncio.create_task(other_work())
        try:
            answer = await active.write(plan)
        finally:
            ticker.cancel()
        assert answer == f"slice {SLICES - 1}"
        # Each call saw the slices before it applied, and planned for the next index.
        assert seen == [(i, Index(first + 1 + i)) for i in range(SLICES)]
        assert runtime.applied_index >= first + SLICES
        committed = active.committed_image().broker_configs("")
        assert dict(committed) == {f"k{i}": "v" for i in range(SLICES)}
        assert ticks >= SLICES - 1  # the loop ran between slices
