"""One member's next step towards its target (Kafka's CurrentAssignmentBuilder).

Partitions leave a member before they reach another: a member that must give some up is first
sent its assignment without them, with its epoch unchanged (UNREVOKED_PARTITIONS); only once it
reports them released does it move to the target epoch and receive new partitions, and only
those no other member still owns or must still release (UNRELEASED_PARTITIONS while some are
held elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable

from raftka.broker.groups.state import (
    CurrentAssignment,
    MemberState,
    TopicPartitions,
    pairs,
    same,
)

#: (topic, partition) -> True when a member other than this one owns it or must release it.
OwnedElsewhere = Callable[[str, int], bool]


def reconcile(
    current: CurrentAssignment,
    *,
    target_epoch: int,
    target: TopicPartitions,
    owned: TopicPartitions | None,
    owned_elsewhere: OwnedElsewhere,
) -> CurrentAssignment:
    """The member's next assignment. ``owned`` is what it last reported owning (None: unknown,
    so assume it still owns everything it was given)."""
    if current.state is MemberState.UNREVOKED_PARTITIONS:
        if _still_owns(owned, current.pending_revocation):
            return current
        return _next(current, target_epoch, target, owned, owned_elsewhere)
    if (
        current.state is MemberState.STABLE
        and current.member_epoch == target_epoch
        and same(current.assigned, target)
    ):
        return current
    return _next(current, target_epoch, target, owned, owned_elsewhere)


def _still_owns(owned: TopicPartitions | None, partitions: TopicPartitions) -> bool:
    if owned is None:
        return bool(partitions)
    return bool(pairs(owned) & pairs(partitions))


def _next(
    current: CurrentAssignment,
    target_epoch: int,
    target: TopicPartitions,
    owned: TopicPartitions | None,
    owned_elsewhere: OwnedElsewhere,
) -> CurrentAssignment:
    assigned = pairs(current.assigned)
    wanted = pairs(target)
    keep = assigned & wanted
    revoke = assigned - keep
    unreleased = {tp for tp in wanted - keep if owned_elsewhere(*tp)}
    add = wanted - keep - unreleased
    if revoke and _still_owns(owned, _tps(revoke)):
        return CurrentAssignment(
            member_epoch=current.member_epoch,
            previous_member_epoch=current.previous_member_epoch,
            state=MemberState.UNREVOKED_PARTITIONS,
            assigned=_tps(keep),
            pending_revocation=_tps(revoke),
        )
    moved = target_epoch != current.member_epoch  # the previous epoch stays for a lost answer
    return CurrentAssignment(
        member_epoch=target_epoch,
        previous_member_epoch=current.member_epoch if moved else current.previous_member_epoch,
        state=MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE,
        assigned=_tps(keep | add),
        pending_revocation={},
    )


def _tps(items: set[tuple[str, int]]) -> dict[str, frozenset[int]]:
    out: dict[str, set[int]] = {}
    for t, p in items:
        out.setdefault(t, set()).add(p)
    return {t: frozenset(ps) for t, ps in sorted(out.items())}
