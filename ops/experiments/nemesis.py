"""The nemesis: strikes a schedule's faults on a cluster and heals them.

Process faults go through a :class:`ProcessControl` (``LocalCluster``: kill -9 and restart,
kill -9 then the loss of the unflushed tails of the partition logs (power-loss), SIGSTOP and
SIGCONT). Network faults go through a :class:`NetworkFaults` backend: the nodes'
own fault injection (:class:`InProcessNetwork`, any OS, no root: "partition" isolates the node
on every path, both ways) or real network namespaces (``netns.NetnsNetwork``, Linux as root).
Both leave client traffic alone, so an isolated leader can still be written to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from raftka.common.errors import RaftkaError
from raftka.common.faults import Action, FaultRule
from raftka.ops.experiments.schedule import Fault, FaultKind
from raftka.ops.experiments.targets import NoTarget, Topology, resolve_target
from raftka.ops.fault_client import FaultClient


class ProcessControl(Protocol):
    """What the nemesis needs of a cluster supervisor (``LocalCluster`` has it)."""

    def kill(self, node_id: int) -> None: ...

    def lose_unflushed_writes(self, node_id: int) -> Sequence[object]:
        """Cut what the (killed) node had not fsynced; returns what was cut."""
        ...

    def start(self, node_id: int | None = None) -> None: ...

    def pause(self, node_id: int) -> None: ...

    def resume(self, node_id: int) -> None: ...


class NetworkFaults(Protocol):
    async def partition(self, node: int) -> None:
        """Cut ``node`` off from every other node, both ways."""

    async def degrade(self, node: int, *, delay_ms: int = 0, loss: float = 0.0) -> None:
        """Delay, or drop a share of, the traffic between ``node`` and the other nodes."""

    async def heal(self, node: int) -> None:
        """Undo every network fault on ``node``."""

    async def close(self) -> None: ...


class InProcessNetwork:
    """Network faults through each node's FaultService (the node must run with faults on)."""

    def __init__(self, addresses: Mapping[int, str], timeout_s: float = 3.0) -> None:
        self._addresses = dict(addresses)
        self._timeout_s = timeout_s

    async def _inject(self, node: int, rule: FaultRule) -> None:
        async with FaultClient(self._addresses[node], timeout_s=self._timeout_s) as client:
            await client.inject([rule])

    async def partition(self, node: int) -> None:
        await self._inject(node, FaultRule(Action.DROP))

    async def degrade(self, node: int, *, delay_ms: int = 0, loss: float = 0.0) -> None:
        if delay_ms:
            await self._inject(node, FaultRule(Action.DELAY, delay_ms=delay_ms))
        if loss:
            await self._inject(node, FaultRule(Action.DROP, probability=loss))

    async def heal(self, node: int) -> None:
        async with FaultClient(self._addresses[node], timeout_s=self._timeout_s) as client:
            await client.clear()

    async def close(self) -> None:
        return None


@dataclass
class StruckFault:
    """A scheduled fault as it happened."""

    fault: Fault
    node: int | None = None
    """The node it struck (None: skipped)."""
    started_at: float | None = None
    healed_at: float | None = None
    skipped: str = ""
    """Why nothing was done (no node fitted the role, the strike failed)."""
    controller: bool = False
    """The node is a controller (else a broker)."""
    was_controller_leader: bool = False
    led_partitions: tuple[int, ...] = ()
    """The partitions the node led when the fault struck."""
    heal_errors: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.started_at is not None and self.healed_at is None

    def label(self) -> str:
        if self.node is None:
            return f"{self.fault.describe()} (skipped: {self.skipped})"
        return f"{self.fault.describe()} = node {self.node}"

    def to_json(self) -> dict[str, Any]:
        return {
            **self.fault.to_json(),
            "node": self.node,
            "node_role": None
            if self.node is None
            else "controller"
            if self.controller
            else "broker",
            "started_at": _round(self.started_at),
            "healed_at": _round(self.healed_at),
            "skipped": self.skipped or None,
            "was_controller_leader": self.was_controller_leader,
            "led_partitions": list(self.led_partitions),
            "heal_errors": self.heal_errors,
        }


class Nemesis:
    def __init__(
        self,
        processes: ProcessControl,
        network: NetworkFaults,
        clock: Callable[[], float],
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self._processes = processes
        self._network = network
        self._clock = clock
        self._log = log
        self.struck: list[StruckFault] = []

    async def strike(self, fault: Fault, topology: Topology) -> StruckFault:
        """Resolve the fault's target in ``topology`` and strike it."""
        record = StruckFault(fault)
        self.struck.append(record)
        try:
            node = resolve_target(fault, topology)
        except NoTarget as e:
            record.skipped = str(e)
            self._log(f"fault {fault.index}: {record.label()}")
            return record
        record.node = node
        record.controller = node in topology.controllers
        record.was_controller_leader = node == topology.controller_leader
        record.led_partitions = topology.led_by(node)
        record.started_at = self._clock()
        try:
            await self._apply(fault, node)
        except (RaftkaError, OSError) as e:
            record.skipped = f"strike failed: {e}"
            record.healed_at = record.started_at
            self._log(f"fault {fault.index}: {fault.describe()} = node {node} failed: {e}")
            return record
        self._log(f"fault {fault.index}: {record.label()}")
        return record

    async def _apply(self, fault: Fault, node: int) -> None:
        kind = fault.kind
        if kind is FaultKind.KILL:
            await asyncio.to_thread(self._processes.kill, node)
        elif kind is FaultKind.POWER_LOSS:
            await asyncio.to_thread(self._processes.kill, node)
            cut = await asyncio.to_thread(self._processes.lose_unflushed_writes, node)
            self._log(
                f"fault {fault.index}: node {node} lost the unflushed tails of {len(cut)} logs"
            )
        elif kind is FaultKind.PAUSE:
            self._processes.pause(node)
        elif kind is FaultKind.PARTITION:
            await self._network.partition(node)
        elif kind is FaultKind.DELAY:
            await self._network.degrade(node, delay_ms=fault.delay_ms)
        else:
            await self._network.degrade(node, loss=fault.loss)

    async def heal(self, record: StruckFault) -> None:
        """Undo one fault (restart, resume, clear the network); errors are kept, not raised."""
        if not record.active or record.node is None:
            return
        node, kind = record.node, record.fault.kind
        try:
            if kind in (FaultKind.KILL, FaultKind.POWER_LOSS):
                self._processes.start(node)
            elif kind is FaultKind.PAUSE:
                self._processes.resume(node)
            else:
                await self._network.heal(node)
        except (RaftkaError, OSError) as e:
            record.heal_errors.append(str(e))
            self._log(f"fault {record.fault.index}: healing node {node} failed: {e}")
        record.healed_at = self._clock()
        self._log(f"fault {record.fault.index}: healed node {node}")

    async def heal_all(self) -> None:
        """Heal every fault still in force, most recent first."""
        for record in reversed(self.struck):
            await self.heal(record)

    def active(self) -> list[StruckFault]:
        return [r for r in self.struck if r.active]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
