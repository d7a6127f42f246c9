"""Fencing a broker its peers report unreachable: the controller's decision (sans-I/O, the
clock is an argument)."""

from __future__ import annotations

from raftka.controller.control.liveness import Probe, ProbeOutcome, UnreachableBrokers

from .harness import Harness


def _cluster() -> Harness:
    h = Harness()
    h.add_brokers([1, 2, 3])
    return h


def _epoch(h: Harness, broker_id: int) -> int:
    reg = h.image.broker(broker_id)
    assert reg is not None
    return int(reg.epoch)


def test_a_report_from_an_active_peer_starts_one_probe() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=100)
    assert probe == Probe(1, _epoch(h, 1), 100, 2)
    # More reports while it runs start nothing more.
    assert u.report(h.image, 3, 1, _epoch(h, 1), now_ms=120) is None
    assert u.report(h.image, 2, 1, _epoch(h, 1), now_ms=150) is None


def test_stale_reports_start_no_probe() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    epoch = _epoch(h, 1)
    assert u.report(h.image, 1, 1, epoch, now_ms=0) is None  # about itself
    assert u.report(h.image, 2, 1, epoch - 1, now_ms=0) is None  # an earlier incarnation
    assert u.report(h.image, 2, 9, 5, now_ms=0) is None  # an unknown broker
    assert u.report(h.image, 9, 1, epoch, now_ms=0) is None  # from an unknown broker
    h.heartbeat(3, want_fence=True)
    assert u.report(h.image, 3, 1, epoch, now_ms=0) is None  # from a fenced broker
    h.heartbeat(1, want_fence=True)
    assert u.report(h.image, 2, 1, epoch, now_ms=0) is None  # about a fenced broker


REFUSED, NO_ANSWER = ProbeOutcome.REFUSED, ProbeOutcome.NO_ANSWER


def test_a_refused_probe_fences_a_broker_silent_since_it_began() -> None:
    """kill -9: nothing listens on its port any more. Its last heartbeat may be recent."""
    h = _cluster()
    u = UnreachableBrokers()
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=1000)
    assert probe is not None
    assert u.confirm(probe, REFUSED, h.image, last_contact_ms=900, now_ms=1010)


def test_an_unanswered_probe_fences_only_a_broker_quiet_for_a_while() -> None:
    """A paused broker neither answers nor heartbeats; a broker starved of CPU for a moment may
    miss a probe's deadline but its heartbeats still come: it is not fenced."""
    h = _cluster()
    u = UnreachableBrokers(quiet_ms=1000)
    epoch = _epoch(h, 1)
    probe = u.report(h.image, 2, 1, epoch, now_ms=1000)
    assert probe is not None
    assert not u.confirm(probe, NO_ANSWER, h.image, last_contact_ms=600, now_ms=1500)
    probe = u.report(h.image, 2, 1, epoch, now_ms=1600)
    assert probe is not None
    assert u.confirm(probe, NO_ANSWER, h.image, last_contact_ms=600, now_ms=2100)


def test_an_answered_probe_never_fences() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=5000)
    assert probe is not None
    assert not u.confirm(probe, ProbeOutcome.ANSWERED, h.image, last_contact_ms=0, now_ms=5500)


def test_a_heartbeat_during_the_probe_saves_the_broker() -> None:
    """The broker heartbeated after the probe began: it is alive, only unreachable from the
    controller's probe (or its reporter)."""
    h = _cluster()
    u = UnreachableBrokers()
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=1000)
    assert probe is not None
    for outcome in (REFUSED, NO_ANSWER):
        assert not u.confirm(probe, outcome, h.image, last_contact_ms=1000, now_ms=3000)
        assert not u.confirm(probe, outcome, h.image, last_contact_ms=1300, now_ms=3000)


def test_a_failed_probe_of_a_replaced_or_fenced_incarnation_fences_nothing() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=1000)
    assert probe is not None
    h.heartbeat(1, want_fence=True)  # fenced meanwhile (e.g. its session expired)
    assert not u.confirm(probe, REFUSED, h.image, last_contact_ms=0, now_ms=1500)
    h.register(1, incarnation="inc-1-again")  # a new incarnation registered
    probe = u.report(h.image, 2, 1, _epoch(h, 1), now_ms=2000)
    assert probe is None  # the new incarnation starts fenced: no report counts yet


def test_an_answered_probe_rests_reports_for_a_while() -> None:
    """A busy broker, or one cut off from a single peer, answers: it is left alone, and the
    reports that keep coming are not probed again until the backoff passes."""
    h = _cluster()
    u = UnreachableBrokers(answered_backoff_ms=1000)
    epoch = _epoch(h, 1)
    probe = u.report(h.image, 2, 1, epoch, now_ms=0)
    assert probe is not None
    u.answered(probe, now_ms=40)
    assert u.report(h.image, 2, 1, epoch, now_ms=500) is None
    assert u.report(h.image, 3, 1, epoch, now_ms=1039) is None
    again = u.report(h.image, 3, 1, epoch, now_ms=1040)
    assert again == Probe(1, epoch, 1040, 3)


def test_a_failed_probe_ends_so_that_a_later_report_probes_again() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    epoch = _epoch(h, 1)
    probe = u.report(h.image, 2, 1, epoch, now_ms=0)
    assert probe is not None
    # It heartbeated meanwhile.
    assert not u.confirm(probe, NO_ANSWER, h.image, last_contact_ms=10, now_ms=500)
    assert u.report(h.image, 2, 1, epoch, now_ms=20) == Probe(1, epoch, 20, 2)


def test_probes_of_different_brokers_run_side_by_side() -> None:
    h = _cluster()
    u = UnreachableBrokers()
    first = u.report(h.image, 3, 1, _epoch(h, 1), now_ms=0)
    second = u.report(h.image, 3, 2, _epoch(h, 2), now_ms=0)
    assert first is not None and second is not None
    assert first.broker_id == 1 and second.broker_id == 2
