"""The server assignors: balance, stickiness, co-partitioning, determinism."""

from __future__ import annotations

import random

import pytest

from raftka.broker.groups.assignors import ASSIGNORS, range_, uniform


def _subs(members: dict[str, set[str]]) -> dict[str, frozenset[str]]:
    return {m: frozenset(ts) for m, ts in members.items()}


def _flat(result: dict[str, dict[str, frozenset[int]]]) -> list[tuple[str, int]]:
    return sorted((t, p) for tps in result.values() for t, ps in tps.items() for p in ps)


def _count(result: dict[str, dict[str, frozenset[int]]], m: str) -> int:
    return sum(len(ps) for ps in result[m].values())


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_every_partition_goes_to_exactly_one_subscriber(name: str) -> None:
    members = _subs({"a": {"x", "y"}, "b": {"y"}, "c": {"x", "z"}})
    topics = {"x": 5, "y": 3, "z": 2}
    result = ASSIGNORS[name](members, topics, {})
    expected = sorted((t, p) for t, n in topics.items() for p in range(n))
    assert _flat(result) == expected
    for m, tps in result.items():
        assert set(tps) <= members[m], (m, tps)


@pytest.mark.parametrize("members,partitions", [(3, 10), (4, 4), (7, 3), (5, 23)])
def test_uniform_balances_identical_subscriptions_within_one(members: int, partitions: int) -> None:
    subs = _subs({f"m{i}": {"t", "u"} for i in range(members)})
    result = uniform(subs, {"t": partitions, "u": partitions + 1}, {})
    counts = [_count(result, m) for m in subs]
    assert max(counts) - min(counts) <= 1, counts


def test_uniform_is_sticky_when_a_member_joins() -> None:
    before = uniform(_subs({"a": {"t"}, "b": {"t"}}), {"t": 12}, {})
    after = uniform(_subs({"a": {"t"}, "b": {"t"}, "c": {"t"}}), {"t": 12}, before)
    assert [_count(after, m) for m in "abc"] == [4, 4, 4]
    for m in "ab":  # a and b only give partitions up, they never swap
        assert after[m]["t"] <= before[m]["t"]


def test_uniform_is_sticky_when_a_member_leaves() -> None:
    before = uniform(_subs({"a": {"t"}, "b": {"t"}, "c": {"t"}}), {"t": 9}, {})
    after = uniform(_subs({"a": {"t"}, "b": {"t"}}), {"t": 9}, before)
    for m in "ab":
        assert before[m]["t"] <= after[m]["t"]


def test_uniform_heterogeneous_subscriptions_are_sensible() -> None:
    # b only reads y; a reads both: a should take x entirely and share nothing it need not.
    result = uniform(_subs({"a": {"x", "y"}, "b": {"y"}}), {"x": 4, "y": 4}, {})
    assert result["a"].get("x") == frozenset(range(4))
    assert result["b"]["y"] == frozenset(range(4))


def test_range_gives_contiguous_ranges_and_copartitioned_numbers() -> None:
    subs = _subs({"b": {"t", "u"}, "a": {"t", "u"}, "c": {"t", "u"}})
    result = range_(subs, {"t": 7, "u": 7}, {})
    assert result["a"]["t"] == frozenset({0, 1, 2})
    assert result["b"]["t"] == frozenset({3, 4})
    assert result["c"]["t"] == frozenset({5, 6})
    for m in "abc":
        assert result[m]["t"] == result[m]["u"]


def test_range_is_sticky_and_keeps_copartitioning() -> None:
    subs2 = _subs({"a": {"t", "u"}, "b": {"t", "u"}})
    before = range_(subs2, {"t": 6, "u": 6}, {})
    after = range_(
        _subs({"a": {"t", "u"}, "b": {"t", "u"}, "c": {"t", "u"}}), {"t": 6, "u": 6}, before
    )
    for m in "ab":
        assert after[m]["t"] <= before[m]["t"]
    for m in "abc":
        assert after[m]["t"] == after[m]["u"]
        assert len(after[m]["t"]) == 2


@pytest.mark.parametrize("name", sorted(ASSIGNORS))
def test_assignors_are_deterministic(name: str) -> None:
    rng = random.Random(5)
    members = {f"m{i}": {rng.choice("xyz"), rng.choice("xyz")} for i in range(6)}
    topics = {"x": 7, "y": 3, "z": 11}
    shuffled = dict(sorted(members.items(), key=lambda kv: rng.random()))
    first = ASSIGNORS[name](_subs(members), topics, {})
    second = ASSIGNORS[name](_subs(shuffled), dict(reversed(list(topics.items()))), {})
    assert first == second


def test_partitions_of_a_shrunk_or_deleted_topic_are_dropped() -> None:
    before = {"a": {"t": frozenset({0, 1, 2, 3}), "gone": frozenset({0})}}
    result = uniform(_subs({"a": {"t", "gone"}}), {"t": 2}, before)
    assert result == {"a": {"t": frozenset({0, 1})}}
