"""Server-side assignors: pure, deterministic and sticky.

Each takes the members (id -> the topics it subscribes to), the partition count of every
subscribed topic, and the previous target assignment, and returns the new target: every
partition of a subscribed topic goes to exactly one member that subscribes to it.

- ``uniform`` (the default): balance first (members with the same subscription end with
  partition counts that differ by at most 1), then stickiness (a member keeps what it had
  wherever balance allows).
- ``range``: per topic, contiguous ranges in member-id order; topics with the same partition
  count and the same subscribers ("co-partitioned") give each member the same partition
  numbers. Sticky: a member keeps the numbers it had, up to its share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from raftka.broker.groups.state import TopicPartitions

Subscriptions = Mapping[str, frozenset[str]]  # member id -> subscribed (existing) topics
Assignor = Callable[
    [Subscriptions, Mapping[str, int], Mapping[str, TopicPartitions]],
    dict[str, dict[str, frozenset[int]]],
]


def uniform(
    members: Subscriptions,
    topics: Mapping[str, int],
    previous: Mapping[str, TopicPartitions],
) -> dict[str, dict[str, frozenset[int]]]:
    order = sorted(members)
    eligible = {t: [m for m in order if t in members[m]] for t in sorted(topics)}
    owned: dict[str, dict[str, set[int]]] = {m: {} for m in order}
    counts = dict.fromkeys(order, 0)
    taken: set[tuple[str, int]] = set()
    # 1. Stickiness: keep every previous partition that is still valid.
    for m in order:
        for t, ps in sorted(previous.get(m, {}).items()):
            if t not in members[m] or t not in topics:
                continue
            for p in sorted(ps):
                if p < topics[t] and (t, p) not in taken:
                    taken.add((t, p))
                    owned[m].setdefault(t, set()).add(p)
                    counts[m] += 1
    # 2. Hand out the rest, topics with the fewest candidates first, to the least loaded.
    for t in sorted(topics, key=lambda t: (len(eligible[t]), t)):
        candidates = eligible[t]
        if not candidates:
            continue
        for p in range(topics[t]):
            if (t, p) in taken:
                continue
            m = min(candidates, key=lambda c: (counts[c], c))
            taken.add((t, p))
            owned[m].setdefault(t, set()).add(p)
            counts[m] += 1
    # 3. Balance: move partitions from the most to the least loaded candidate of each topic
    # while they differ by 2 or more (each move lowers the sum of squared counts: it ends).
    moved = True
    while moved:
        moved = False
        for t in sorted(topics):
            candidates = eligible[t]
            if len(candidates) < 2:
                continue
            while True:
                givers = [m for m in candidates if owned[m].get(t)]
                if not givers:
                    break
                hi = max(givers, key=lambda c: (counts[c], c))
                lo = min(candidates, key=lambda c: (counts[c], c))
                if counts[hi] - counts[lo] < 2:
                    break
                p = max(owned[hi][t])
                owned[hi][t].discard(p)
                owned[lo].setdefault(t, set()).add(p)
                counts[hi] -= 1
                counts[lo] += 1
                moved = True
    return _freeze(owned)


def range_(
    members: Subscriptions,
    topics: Mapping[str, int],
    previous: Mapping[str, TopicPartitions],
) -> dict[str, dict[str, frozenset[int]]]:
    order = sorted(members)
    owned: dict[str, dict[str, set[int]]] = {m: {} for m in order}
    # Co-partitioned topics (same subscribers, same count) are decided once, together.
    families: dict[tuple[tuple[str, ...], int], list[str]] = {}
    for t in sorted(topics):
        subscribers = tuple(m for m in order if t in members[m])
        if subscribers and topics[t] > 0:
            families.setdefault((subscribers, topics[t]), []).append(t)
    for (subscribers, n), family in sorted(families.items(), key=lambda kv: kv[1][0]):
        had: dict[str, set[int]] = {m: set() for m in subscribers}
        claimed: set[int] = set()
        for t in family:  # the previous owner of a number: first topic of the family that says
            for m in subscribers:
                for p in previous.get(m, {}).get(t, ()):
                    if p < n and p not in claimed:
                        claimed.add(p)
                        had[m].add(p)
        base, extra = divmod(n, len(subscribers))
        # Members that had more keep the larger shares (ties: member id order).
        ranked = sorted(subscribers, key=lambda m: (-min(len(had[m]), base + 1), m))
        quota = {m: base + (1 if i < extra else 0) for i, m in enumerate(ranked)}
        numbers: dict[str, set[int]] = {}
        assigned: set[int] = set()
        for m in subscribers:
            keep = sorted(had[m])[: quota[m]]
            numbers[m] = set(keep)
            assigned.update(keep)
        free = [p for p in range(n) if p not in assigned]
        for m in subscribers:
            need = quota[m] - len(numbers[m])
            numbers[m].update(free[:need])
            free = free[need:]
        for t in family:
            for m in subscribers:
                if numbers[m]:
                    owned[m][t] = set(numbers[m])
    return _freeze(owned)


def _freeze(owned: dict[str, dict[str, set[int]]]) -> dict[str, dict[str, frozenset[int]]]:
    return {
        m: {t: frozenset(ps) for t, ps in sorted(tps.items()) if ps} for m, tps in owned.items()
    }


ASSIGNORS: dict[str, Assignor] = {"uniform": uniform, "range": range_}
