"""Fencing a broker its peers cannot reach, once the controller's own probe confirms it.

A session timeout is the slow, last-resort way to notice a dead broker: a broker killed with
kill -9 is visible at once to its peers (their follower fetches are refused), and a paused one
within a fetch deadline. Brokers report such peers in their heartbeats
(``BrokerHeartbeatRequest.unreachable_brokers``); the active controller then probes the broker
itself (a health check with a short deadline) and fences it only if that probe fails too. A
report alone never fences: a broker that is merely busy, or cut off from one peer only, still
answers the controller, and is left alone.

This module is the decision, sans-I/O (time is an argument, the probe is the caller's):

- A report counts when its reporter is an unfenced registered broker other than the suspect,
  and it names the suspect's current broker epoch while the suspect is unfenced (a report
  about an earlier incarnation, or a broker already fenced, is stale).
- A reported broker is probed at once, with at most one probe in flight per broker and none
  within ``answered_backoff_ms`` after one was answered (a broker cut off from a peer but
  alive is not probed over and over).
- A failed probe fences the broker unless the broker was heard from (a heartbeat) since the
  probe began, or its registration changed meanwhile (:meth:`UnreachableBrokers.confirm`). A
  refused connection fences at once (nothing listens on the broker's port: its process is
  gone); a probe that got no answer in time fences only a broker that has also not
  heartbeated for ``quiet_ms``, so that a broker starved of CPU for a moment, whose heartbeats
  still come, is never fenced by a slow probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from raftka.common.metadata.image import MetadataImage

DEFAULT_ANSWERED_BACKOFF_MS = 1000
DEFAULT_QUIET_MS = 1000
"""Twice the brokers' default heartbeat interval (500 ms)."""


class ProbeOutcome(Enum):
    ANSWERED = "answered"
    """Any answer: the broker's process runs."""
    REFUSED = "refused"
    """The connection was refused or reset: nothing listens on the broker's port."""
    NO_ANSWER = "no_answer"
    """No answer by the probe's deadline (a paused, hung, or very busy broker)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """A probe to run: ask ``broker_id`` (incarnation ``broker_epoch``) whether it is alive."""

    broker_id: int
    broker_epoch: int
    started_ms: int
    reporter: int


@dataclass(slots=True)
class _Suspect:
    in_flight: Probe | None = None
    answered_ms: int = -1


class UnreachableBrokers:
    """Which reported brokers to probe, and whether a failed probe fences."""

    def __init__(
        self,
        *,
        answered_backoff_ms: int = DEFAULT_ANSWERED_BACKOFF_MS,
        quiet_ms: int = DEFAULT_QUIET_MS,
    ) -> None:
        self._answered_backoff_ms = answered_backoff_ms
        self._quiet_ms = quiet_ms
        self._suspects: dict[int, _Suspect] = {}

    def report(
        self, image: MetadataImage, reporter: int, suspect: int, suspect_epoch: int, now_ms: int
    ) -> Probe | None:
        """``reporter`` could not reach ``suspect`` (incarnation ``suspect_epoch``): the probe
        to start now, or None (the report is stale, or a probe is running or was answered
        recently)."""
        if reporter == suspect:
            return None
        reporting = image.broker(reporter)
        suspected = image.broker(suspect)
        if reporting is None or reporting.fenced:
            return None
        if suspected is None or suspected.fenced or suspected.epoch != suspect_epoch:
            return None
        state = self._suspects.setdefault(suspect, _Suspect())
        if state.in_flight is not None:
            return None
        if state.answered_ms >= 0 and now_ms - state.answered_ms < self._answered_backoff_ms:
            return None
        state.in_flight = Probe(suspect, suspect_epoch, now_ms, reporter)
        return state.in_flight

    def answered(self, probe: Probe, now_ms: int) -> None:
        """The broker answered ``probe``: it is alive; reports about it rest for a while."""
        state = self._suspects.get(probe.broker_id)
        if state is not None and state.in_flight == probe:
            state.in_flight = None
            state.answered_ms = now_ms

    def confirm(
        self,
        probe: Probe,
        outcome: ProbeOutcome,
        image: MetadataImage,
        *,
        last_contact_ms: int,
        now_ms: int,
    ) -> bool:
        """``probe`` failed with ``outcome``: whether to fence its broker now. Not when the
        broker heartbeated since the probe began (``last_contact_ms`` at or after its start:
        it is alive, only unreachable from here), nor, for NO_ANSWER, within ``quiet_ms`` of
        its last heartbeat, nor when it is no longer the same unfenced incarnation. Ends the
        probe either way."""
        state = self._suspects.get(probe.broker_id)
        if state is not None and state.in_flight == probe:
            state.in_flight = None
        if outcome is ProbeOutcome.ANSWERED or last_contact_ms >= probe.started_ms:
            return False
        if outcome is ProbeOutcome.NO_ANSWER and now_ms - last_contact_ms < self._quiet_ms:
            return False
        reg = image.broker(probe.broker_id)
        return reg is not None and not reg.fenced and reg.epoch == probe.broker_epoch

    def forget(self, broker_id: int) -> None:
        self._suspects.pop(broker_id, None)
