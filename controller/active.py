"""The active controller: the Raft leader's write path for metadata.

A write is planned against the *working image* (the committed image plus every record this
leader has proposed but not yet seen commit), proposed as one Raft entry, and answered once that
entry commits. Planning, proposing and applying to the working image happen without yielding to
the event loop, so concurrent requests see each other's effects and never both create the same
topic. When leadership is lost the working image is dropped; a new leader rebuilds it from the
committed image once all earlier entries are applied.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from raftka.common.errors import NotControllerError, RequestTimedOutError
from raftka.common.ids import Index, NodeId, Term
from raftka.common.metadata.image import MetadataImage
from raftka.controller.control.result import ControllerResult
from raftka.controller.metadata_log import MetadataStateMachine
from raftka.controller.quorum.runtime import LeadershipLost, QuorumRuntime
from raftka.controller.raft.errors import LeadershipTransferInProgress, NotLeader
from raftka.v1 import metadata_pb2 as mpb

log = structlog.get_logger(__name__)

R = TypeVar("R")
Plan = Callable[[MetadataImage, Index], ControllerResult[R]]
"""Given the working image and the index the entry will get, return the records to write and
the answer to give once they commit (a control manager call). Must not mutate the image."""


class ActiveController:
    def __init__(
        self,
        runtime: QuorumRuntime,
        state: MetadataStateMachine,
        addresses: dict[NodeId, str],
        request_timeout_s: float,
    ) -> None:
        self._runtime = runtime
        self._state = state
        self._addresses = addresses
        self._request_timeout_s = request_timeout_s
        self._working: MetadataImage | None = None
        self._leader_term: Term | None = None
        self._became_active_listeners: list[Callable[[], None]] = []
        runtime.add_leader_listener(self._on_leadership)

    def on_became_active(self, listener: Callable[[], None]) -> None:
        self._became_active_listeners.append(listener)

    def _on_leadership(self, term: Term | None) -> None:
        self._leader_term = term
        if term is None:
            self._working = None
            log.info("controller_inactive")
            return
        self._working = self._state.image.copy()
        log.info(
            "controller_active", term=term, metadata_index=self._state.image.last_applied_index
        )
        for listener in self._became_active_listeners:
            listener()

    @property
    def is_active(self) -> bool:
        return self._working is not None and self._runtime.is_ready_leader

    def not_controller(self) -> NotControllerError:
        leader = self._runtime.leader_id
        if leader is None or leader == self._runtime.node_id:
            return NotControllerError(
                f"node {self._runtime.node_id} is not the active controller and no leader is "
                "known yet (an election is in progress): retry shortly"
            )
        address = self._addresses.get(leader)
        return NotControllerError(
            f"node {self._runtime.node_id} is not the active controller; node {leader} at "
            f"{address} is",
            leader_id=leader,
            leader_address=address,
        )

    def committed_image(self) -> MetadataImage:
        """The committed image, for reads; only on the active controller (up to date)."""
        if not self.is_active:
            raise self.not_controller()
        return self._state.image

    def working_image(self) -> MetadataImage:
        if not self.is_active or self._working is None:
            raise self.not_controller()
        return self._working

    async def write(self, plan: Plan[R]) -> R:
        """Plan, propose and await commit. Raises NotControllerError when not active and
        RequestTimedOutError when the entry does not commit in time (outcome unknown).

        A plan that returns a slice (``ControllerResult.more``) is proposed and planned again
        after the event loop had a turn, until the last slice: each slice is its own Raft
        entry, and the last one's commit (entries commit in order) answers the request."""
        started = time.monotonic()
        committed: list[asyncio.Future[Index]] = []
        entries = records_written = 0
        while True:
            working = self.working_image()
            result = plan(working, Index(self._runtime.status().last_index + 1))
            if result.records:
                committed.append(self._propose(working, result.records))
                entries += 1
                records_written += len(result.records)
            if not result.more:
                break
            await asyncio.sleep(0)  # let ticks, heartbeats and other requests run
        deadline = time.monotonic() + self._request_timeout_s
        for future in committed:
            await self._await_commit(future, deadline)
        if committed:
            log.debug(
                "metadata_written",
                entries=entries,
                records=records_written,
                ms=(time.monotonic() - started) * 1000,
            )
        return result.response

    def _propose(
        self, working: MetadataImage, records: tuple[mpb.MetadataRecord, ...]
    ) -> asyncio.Future[Index]:
        next_index = Index(self._runtime.status().last_index + 1)
        data = mpb.MetadataBatch(records=list(records)).SerializeToString()
        try:
            index, committed = self._runtime.submit(data)
        except (NotLeader, LeadershipTransferInProgress):
            raise self.not_controller() from None
        # A slice's failure is seen through the first one awaited; none goes unretrieved.
        committed.add_done_callback(_retrieve)
        if index != next_index:
            raise AssertionError(f"entry got index {index}, planned for {next_index}")
        # The entry now sits in the leader's log: reflect it in the working image.
        for record in records:
            working.apply(record, index)
        return committed

    async def _await_commit(self, committed: asyncio.Future[Index], deadline: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(committed), max(0.0, deadline - time.monotonic()))
        except (NotLeader, LeadershipTransferInProgress, LeadershipLost):
            raise self.not_controller() from None
        except TimeoutError:
            raise RequestTimedOutError(
                f"the metadata change did not commit within {self._request_timeout_s:g}s "
                "(a majority of controllers may be down); it may still commit: check before retrying"
            ) from None


def _retrieve(future: asyncio.Future[Index]) -> None:
    if not future.cancelled():
        future.exception()
