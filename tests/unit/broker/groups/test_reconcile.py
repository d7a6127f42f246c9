"""Reconciliation steps (CurrentAssignmentBuilder): revoke first, then add what is free."""

from __future__ import annotations

from raftka.broker.groups.reconcile import reconcile
from raftka.broker.groups.state import CurrentAssignment, MemberState

NOBODY = lambda t, p: False  # noqa: E731


def _tp(*ps: int) -> dict[str, frozenset[int]]:
    return {"t": frozenset(ps)} if ps else {}


def test_stable_at_the_target_epoch_stays() -> None:
    current = CurrentAssignment(3, 2, MemberState.STABLE, _tp(0, 1))
    assert (
        reconcile(
            current, target_epoch=3, target=_tp(0, 1), owned=_tp(0, 1), owned_elsewhere=NOBODY
        )
        is current
    )


def test_stable_at_the_target_epoch_but_short_of_the_target_moves_on() -> None:
    # e.g. a static member back from a temporary leave it took while partitions were unreleased
    current = CurrentAssignment(3, 3, MemberState.STABLE, _tp(0))
    new = reconcile(current, target_epoch=3, target=_tp(0, 1), owned={}, owned_elsewhere=NOBODY)
    assert (new.state, new.member_epoch, new.assigned) == (MemberState.STABLE, 3, _tp(0, 1))


def test_revocation_keeps_the_epoch_and_shrinks_the_assignment() -> None:
    current = CurrentAssignment(3, 2, MemberState.STABLE, _tp(0, 1, 2))
    new = reconcile(
        current, target_epoch=4, target=_tp(0, 5), owned=_tp(0, 1, 2), owned_elsewhere=NOBODY
    )
    assert new.state is MemberState.UNREVOKED_PARTITIONS
    assert new.member_epoch == 3
    assert new.assigned == _tp(0)
    assert new.pending_revocation == _tp(1, 2)


def test_unrevoked_waits_until_the_member_reports_the_release() -> None:
    waiting = CurrentAssignment(3, 2, MemberState.UNREVOKED_PARTITIONS, _tp(0), _tp(1, 2))
    still = reconcile(
        waiting, target_epoch=4, target=_tp(0, 5), owned=_tp(0, 2), owned_elsewhere=NOBODY
    )
    assert still is waiting
    unknown = reconcile(
        waiting, target_epoch=4, target=_tp(0, 5), owned=None, owned_elsewhere=NOBODY
    )
    assert unknown is waiting
    done = reconcile(
        waiting, target_epoch=4, target=_tp(0, 5), owned=_tp(0), owned_elsewhere=NOBODY
    )
    assert (done.state, done.member_epoch, done.previous_member_epoch) == (MemberState.STABLE, 4, 3)
    assert done.assigned == _tp(0, 5)
    assert done.pending_revocation == {}


def test_partitions_held_elsewhere_are_not_added() -> None:
    current = CurrentAssignment(3, 2, MemberState.STABLE, _tp(0))
    held = lambda t, p: p == 7  # noqa: E731
    new = reconcile(
        current, target_epoch=4, target=_tp(0, 6, 7), owned=_tp(0), owned_elsewhere=held
    )
    assert (new.state, new.member_epoch) == (MemberState.UNRELEASED_PARTITIONS, 4)
    assert new.assigned == _tp(0, 6)
    # Once the other member releases 7, the same epoch brings it.
    later = reconcile(
        new, target_epoch=4, target=_tp(0, 6, 7), owned=_tp(0, 6), owned_elsewhere=NOBODY
    )
    assert (later.state, later.member_epoch, later.previous_member_epoch) == (
        MemberState.STABLE,
        4,
        3,
    )  # the epoch did not move: the previous one is still 3
    assert later.assigned == _tp(0, 6, 7)


def test_revocation_is_skipped_when_the_member_already_let_go() -> None:
    current = CurrentAssignment(3, 2, MemberState.STABLE, _tp(0, 1))
    new = reconcile(current, target_epoch=4, target=_tp(0), owned=_tp(0), owned_elsewhere=NOBODY)
    assert (new.state, new.member_epoch, new.assigned) == (MemberState.STABLE, 4, _tp(0))
