"""Broker sessions: in-memory heartbeat bookkeeping of the active controller (not replicated).

A new active controller starts with no history; every registered broker is treated as if it
had heartbeated when the BrokerSessions object was created (``started_ms``), so a failover
gives each broker a full session timeout before it can be fenced (Kafka does the same).

Time this controller itself could not act (its event loop stalled: a starved CPU, a long
apply) is not held against the brokers (``forgive``): their heartbeats may be sitting unread
in its inbox, and a check that runs first would fence a healthy broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from raftka.common.ids import BrokerId
from raftka.common.metadata.image import MetadataImage


@dataclass(slots=True)
class BrokerSession:
    last_contact_ms: int
    metadata_index: int = -1
    """The highest metadata index the broker reported as applied; -1 when unknown."""
    controlled_shutdown_index: int | None = None
    """Index of the entry that put the broker in controlled shutdown, when known."""
    elections_pending: bool = True
    """Leaderless partitions this unfenced broker could lead may remain: its unfencing was
    written in slices and not finished, or this controller has not looked since it became
    active (a new active controller does not know what an earlier one left undone)."""
    forgiven_ms: int = 0
    """Time since the last contact during which this controller's own loop was stalled."""


class BrokerSessions:
    """Last heartbeat time, reported metadata index and controlled-shutdown index per broker."""

    def __init__(self, session_timeout_ms: int, started_ms: int) -> None:
        if session_timeout_ms <= 0:
            raise ValueError(f"session_timeout_ms must be positive, got {session_timeout_ms}")
        self._timeout_ms = session_timeout_ms
        self._started_ms = started_ms
        self._sessions: dict[BrokerId, BrokerSession] = {}
        self._forgiven_ms = 0
        """Stalls since ``started_ms``: what a broker not heard from yet is forgiven."""

    @property
    def session_timeout_ms(self) -> int:
        return self._timeout_ms

    def touch(self, broker_id: int, now_ms: int, metadata_index: int | None = None) -> None:
        """Records a heartbeat (and the metadata index it reported)."""
        session = self._session(BrokerId(broker_id))
        if now_ms >= session.last_contact_ms:
            session.last_contact_ms, session.forgiven_ms = now_ms, 0
        if metadata_index is not None:
            session.metadata_index = metadata_index

    def restart(self, broker_id: int, now_ms: int) -> None:
        """Starts a fresh session for a new incarnation of ``broker_id``."""
        self._sessions[BrokerId(broker_id)] = BrokerSession(last_contact_ms=now_ms)

    def forgive(self, stalled_ms: int) -> None:
        """This controller's event loop was stalled for ``stalled_ms``: that time does not
        count towards any broker's session."""
        self._forgiven_ms += stalled_ms
        for session in self._sessions.values():
            session.forgiven_ms += stalled_ms

    def silent_ms(self, broker_id: int, now_ms: int) -> int:
        """How long the broker has not been heard from, stalls of this controller left out."""
        session = self._sessions.get(BrokerId(broker_id))
        if session is None:
            return now_ms - self._started_ms - self._forgiven_ms
        return now_ms - session.last_contact_ms - session.forgiven_ms

    def forget(self, broker_id: int) -> None:
        self._sessions.pop(BrokerId(broker_id), None)

    def get(self, broker_id: int) -> BrokerSession | None:
        return self._sessions.get(BrokerId(broker_id))

    def last_contact_ms(self, broker_id: int) -> int:
        session = self._sessions.get(BrokerId(broker_id))
        return self._started_ms if session is None else session.last_contact_ms

    def metadata_index(self, broker_id: int) -> int:
        session = self._sessions.get(BrokerId(broker_id))
        return -1 if session is None else session.metadata_index

    def set_controlled_shutdown_index(self, broker_id: int, index: int) -> None:
        self._session(BrokerId(broker_id)).controlled_shutdown_index = index

    def controlled_shutdown_index(self, broker_id: int) -> int | None:
        session = self._sessions.get(BrokerId(broker_id))
        return None if session is None else session.controlled_shutdown_index

    def elections_pending(self, broker_id: int) -> bool:
        return self._session(BrokerId(broker_id)).elections_pending

    def set_elections_pending(self, broker_id: int, pending: bool) -> None:
        self._session(BrokerId(broker_id)).elections_pending = pending

    def is_live(self, image: MetadataImage, broker_id: int, now_ms: int) -> bool:
        """Unfenced and heard from within the session timeout (a fenced broker has no live
        session, so a new incarnation may take over its id at once)."""
        reg = image.broker(broker_id)
        if reg is None or reg.fenced:
            return False
        return self.silent_ms(broker_id, now_ms) <= self._timeout_ms

    def expired(self, image: MetadataImage, now_ms: int) -> list[BrokerId]:
        """Unfenced brokers of ``image`` whose heartbeats lapsed, longest silent first."""
        lapsed = [
            reg.broker_id
            for reg in image.unfenced_brokers()
            if self.silent_ms(reg.broker_id, now_ms) > self._timeout_ms
        ]
        return sorted(lapsed, key=lambda b: (self.last_contact_ms(b), b))

    def lowest_active_metadata_index(self, image: MetadataImage, excluding: int) -> int | None:
        """The smallest metadata index reported by the active brokers other than
        ``excluding``; None when there are none."""
        indexes = [
            self.metadata_index(reg.broker_id)
            for reg in image.active_brokers()
            if reg.broker_id != excluding
        ]
        return min(indexes) if indexes else None

    def _session(self, broker_id: BrokerId) -> BrokerSession:
        session = self._sessions.get(broker_id)
        if session is None:
            session = BrokerSession(last_contact_ms=self._started_ms, forgiven_ms=self._forgiven_ms)
            self._sessions[broker_id] = session
        return session
