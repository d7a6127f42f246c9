"""Fault injection for failover experiments: drop or delay a node's messages to and from chosen
peers, per path, and slow its fsyncs.

Off unless the node's config enables it (``[faults] enabled = true``). Each process has one
injector, :data:`FAULTS`, configured at start-up by ``raftka.ops.node.run_node`` and driven
through the FaultService RPCs (``raftka.common.fault_service``) or ``raftka faults``. The
transport code asks it at a few fixed points:

- Raft (controller to controller): the sender before each call, the receiver on arrival;
- replication: the follower before each fetch and again when the answer arrives (so a fetch
  already in flight when a drop rule is added delivers nothing), the leader when a follower's
  fetch arrives and again before answering it;
- heartbeat: the broker before each heartbeat (peer unknown: only rules without peers match),
  the controller when one arrives (peer = the broker's id);
- markers: a transaction coordinator before each WriteTxnMarkers to a partition leader
  (outbound, peer = the destination broker's id, its own id for partitions it leads; a dropped
  call fails like a lost connection and the coordinator retries it);
- fsync: every fsync of a log segment or state file (from I/O threads, never the event loop).

Client traffic is never touched. Delays are real time (``asyncio.sleep`` on the path that
carries the message), so a delayed path holds later messages behind it, as a slow link does.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

import structlog

from raftka.common.errors import FaultInjectionDisabledError, InvalidRequestError

log = structlog.get_logger(__name__)


class FaultPath(Enum):
    RAFT = "raft"
    REPLICATION = "replication"
    HEARTBEAT = "heartbeat"
    MARKERS = "markers"


class Direction(Enum):
    BOTH = "both"
    OUTBOUND = "out"
    INBOUND = "in"


class Action(Enum):
    DROP = "drop"
    DELAY = "delay"


@dataclass(frozen=True, slots=True)
class FaultSettings:
    """The ``[faults]`` table of a node's config."""

    enabled: bool = False
    """Accept fault-injection calls. Never enable this outside experiments and tests."""
    seed: int = 0
    """Seeds the choice of which messages a rule with probability < 1 affects (0: random)."""
    planted_bugs: tuple[str, ...] = ()
    """Deliberate bugs to plant (names in :data:`PLANTED_BUGS`), so an experiment can show
    that its checker catches them. Honoured only with ``enabled``."""


PLANTED_BUGS = {
    "lso_ignores_open_transactions": (
        "the last stable offset is the high watermark even while a transaction is open, so "
        "read_committed consumers read transactions that may still abort"
    ),
}
"""The bugs a node can be told to plant, and what each breaks."""


@dataclass(frozen=True, slots=True)
class FaultRule:
    action: Action
    paths: frozenset[FaultPath] = frozenset()
    """Empty: every path."""
    peers: frozenset[int] = frozenset()
    """Empty: every peer."""
    direction: Direction = Direction.BOTH
    delay_ms: int = 0
    probability: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 < self.probability <= 1.0:
            raise InvalidRequestError(
                f"fault probability must be in (0, 1], got {self.probability}"
            )
        if self.delay_ms < 0:
            raise InvalidRequestError(f"fault delay_ms must be >= 0, got {self.delay_ms}")
        if self.action is Action.DELAY and self.delay_ms == 0:
            raise InvalidRequestError("a delay rule needs delay_ms > 0")

    def matches(self, path: FaultPath, peer: int | None, direction: Direction) -> bool:
        if self.paths and path not in self.paths:
            return False
        if self.peers and (peer is None or peer not in self.peers):
            return False
        return self.direction is Direction.BOTH or self.direction is direction

    def describe(self) -> str:
        paths = ",".join(sorted(p.value for p in self.paths)) or "all paths"
        peers = ",".join(str(p) for p in sorted(self.peers)) or "all peers"
        what = f"delay {self.delay_ms} ms" if self.action is Action.DELAY else "drop"
        chance = "" if self.probability == 1.0 else f" with probability {self.probability}"
        return f"{what} {self.direction.value} on {paths} to/from {peers}{chance}"


@dataclass(frozen=True, slots=True)
class Verdict:
    drop: bool = False
    delay_s: float = 0.0


PASS = Verdict()


@dataclass
class FaultInjector:
    """The rules in force on this node. Thread-safe: fsync checks come from I/O threads."""

    enabled: bool = False
    node_id: int = -1
    rules: tuple[FaultRule, ...] = ()
    fsync_delay_ms: int = 0
    planted_bugs: frozenset[str] = frozenset()
    _random: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, settings: FaultSettings, node_id: int) -> None:
        unknown = sorted(set(settings.planted_bugs) - set(PLANTED_BUGS))
        if unknown:
            raise InvalidRequestError(
                f"faults.planted_bugs: unknown bug(s) {unknown}; known: {sorted(PLANTED_BUGS)}"
            )
        self.enabled = settings.enabled
        self.node_id = node_id
        self._random = random.Random(settings.seed or None)
        self.planted_bugs = frozenset(settings.planted_bugs) if settings.enabled else frozenset()
        if self.planted_bugs:
            log.warning("planted_bugs_active", bugs=sorted(self.planted_bugs))
        self.clear()

    def planted(self, bug: str) -> bool:
        """Whether this node plays the deliberate bug ``bug`` (experiments only)."""
        return bug in self.planted_bugs

    # ------------------------------------------------------------------ control

    def _check_enabled(self) -> None:
        if not self.enabled:
            raise FaultInjectionDisabledError(
                f"fault injection is disabled on node {self.node_id}: restart it with "
                "`faults.enabled = true` in its config (or --set faults.enabled=true)"
            )

    def add(self, rules: Iterable[FaultRule], fsync_delay_ms: int | None = None) -> None:
        self._check_enabled()
        new = tuple(rules)
        if fsync_delay_ms is not None and fsync_delay_ms < 0:
            raise InvalidRequestError(f"fsync_delay_ms must be >= 0, got {fsync_delay_ms}")
        with self._lock:
            self.rules = self.rules + new
            if fsync_delay_ms is not None:
                self.fsync_delay_ms = fsync_delay_ms
        for rule in new:
            log.warning("fault_injected", rule=rule.describe())
        if fsync_delay_ms is not None:
            log.warning("fault_fsync_delay", delay_ms=fsync_delay_ms)

    def clear(self) -> None:
        with self._lock:
            had = bool(self.rules) or self.fsync_delay_ms > 0
            self.rules = ()
            self.fsync_delay_ms = 0
        if had:
            log.warning("faults_cleared")

    def check_enabled(self) -> None:
        """Raise FaultInjectionDisabledError unless this node accepts fault injection."""
        self._check_enabled()

    # ------------------------------------------------------------------ decisions

    def verdict(self, path: FaultPath, peer: int | None, direction: Direction) -> Verdict:
        rules = self.rules
        if not rules:
            return PASS
        drop = False
        delay_ms = 0
        with self._lock:
            for rule in rules:
                if not rule.matches(path, peer, direction):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.action is Action.DROP:
                    drop = True
                else:
                    delay_ms += rule.delay_ms
        return Verdict(drop, delay_ms / 1000) if drop or delay_ms else PASS

    async def admit(self, path: FaultPath, peer: int | None, direction: Direction) -> bool:
        """Apply the rules to one message: wait out any delay, then say whether it goes on."""
        v = self.verdict(path, peer, direction)
        if v.delay_s:
            await asyncio.sleep(v.delay_s)
        return not v.drop

    def drops(self, path: FaultPath, peer: int | None, direction: Direction) -> bool:
        """Whether a drop rule matches now (no delay: for re-checks when an answer arrives)."""
        return any(
            r.action is Action.DROP and r.probability == 1.0 and r.matches(path, peer, direction)
            for r in self.rules
        )

    def before_fsync(self) -> None:
        """Called by every fsync of a log or state file, on an I/O thread."""
        delay_ms = self.fsync_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000)


FAULTS = FaultInjector()
"""This process's injector (disabled until a node config enables it)."""
